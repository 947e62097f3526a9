from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from registry.models import DataClassification


class Team(models.Model):
    """A group of people who own applications and a monthly AI budget."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=64, unique=True)
    monthly_budget_usd = models.DecimalField(
        "monthly budget (USD)", max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    contacts = models.TextField(blank=True, help_text="Email addresses for budget alerts, one per line.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Application(models.Model):
    """A governed application: it asks the routing API which model version to use."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="applications")
    description = models.TextField(blank=True)
    allowed_classifications = models.ManyToManyField(
        DataClassification, blank=True, related_name="+", help_text="Data classes it may send."
    )
    content_capture = models.BooleanField(
        default=False, help_text="Store prompts and outputs in full; off means only their hashes."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
