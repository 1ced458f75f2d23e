// Kill and retire are final: with JavaScript the decision form asks once more before it sends
// one, and a yes ticks the form's "I understand" box, which the server requires. Without
// JavaScript that box is the confirmation (the server refuses a kill or retire without it).
(function () {
  "use strict";
  var FINAL = { kill: "Kill", retire: "Retire" };

  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "decision-form") return;
    var chosen = form.querySelector('input[name="decision"]:checked');
    if (!chosen || !FINAL[chosen.value]) return;
    var box = form.querySelector('input[name="confirm_final"]');
    event.preventDefault();
    var question =
      FINAL[chosen.value] + " " + (form.dataset.key || "this initiative") +
      "? This is final: it cannot be reopened.";
    if (window.confirm(question)) {
      if (box) box.checked = true;
      event.detail.issueRequest(true);
    }
  });
})();
