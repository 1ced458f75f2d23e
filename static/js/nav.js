// The phone menu of templates/_base.html. Loaded in <head> without defer: the "js" class is
// on <html> before the first paint, so the CSS folds the navigation behind its button only
// when the button can work (without JavaScript the links simply stay visible).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function set(button, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  // Delegated: the button is found whenever it is clicked, whatever htmx swapped in since.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".nav-toggle");
    if (button) set(button, button.getAttribute("aria-expanded") !== "true");
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector('.nav-toggle[aria-expanded="true"]');
    if (open) {
      set(open, false);
      open.focus();
    }
  });
})();
