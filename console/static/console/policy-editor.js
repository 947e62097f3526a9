/*
 * Progressive enhancement for the policy rule editor (templates/policies/version_editor.html).
 * The editor works without this script: every action's inputs are shown, and the server reads
 * only those of the chosen action. With it, each rule shows only the inputs of its action type,
 * and a split shows the running total of its weights.
 */
(function () {
  "use strict";

  function actionSelect(rule) {
    return rule.querySelector("select[name$='-action']");
  }

  function showChosenAction(rule) {
    var select = actionSelect(rule);
    if (!select) {
      return;
    }
    rule.querySelectorAll("[data-action]").forEach(function (group) {
      group.hidden = group.getAttribute("data-action") !== select.value;
    });
  }

  function showSplitTotal(rule) {
    var output = rule.querySelector("[data-split-total]");
    if (!output) {
      return;
    }
    var total = 0;
    var given = false;
    rule.querySelectorAll("input[name*='-split_weight_']").forEach(function (input) {
      if (input.value !== "") {
        given = true;
        total += Number(input.value) || 0;
      }
    });
    output.textContent = given ? "Total: " + total + "%" + (total === 100 ? "." : ", must be 100.") : "";
    output.classList.toggle("warn", given && total !== 100);
  }

  function enhance(rule) {
    rule.classList.add("enhanced");
    showChosenAction(rule);
    showSplitTotal(rule);
    rule.addEventListener("change", function (event) {
      if (event.target === actionSelect(rule)) {
        showChosenAction(rule);
      }
    });
    rule.addEventListener("input", function () {
      showSplitTotal(rule);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-rule]").forEach(enhance);
  });
})();
