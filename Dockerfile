# One image for web, worker and beat (see docker-compose.yml). Build: docker build -t switchboard .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input

RUN useradd --system --uid 1000 switchboard
USER switchboard
EXPOSE 8000
# Threads overlap the database round trip; the heartbeat file lives in memory (measured in bench/route.py).
CMD ["gunicorn", "console.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", \
     "--threads", "4", "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-"]
