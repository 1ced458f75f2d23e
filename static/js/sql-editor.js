// The job form's SQL editor: CodeMirror (static/vendor/codemirror, window.BizSQLEditor) over
// every textarea[data-sql-editor], fed with the schema browser's tables for completion;
// clicking a table or column in the browser inserts its name at the cursor. Without this
// script the textarea is the field, and the form works the same.
(function () {
  "use strict";

  // This script's own nonce (a property only: browsers hide the attribute from the DOM): the
  // CSP lets CodeMirror's <style> element through with it.
  var nonce = (document.currentScript && document.currentScript.nonce) || "";

  function editorOf(textarea) {
    return textarea ? textarea.bizSqlEditor : undefined;
  }

  function currentEditor() {
    return editorOf(document.querySelector("textarea[data-sql-editor]"));
  }

  function applySchema() {
    var editor = currentEditor();
    var panel = document.getElementById("schema-browser");
    var data = document.getElementById("schema-data");
    if (!editor || !panel || !data) return;
    var schema;
    try {
      schema = JSON.parse(data.textContent);
    } catch (error) {
      return;
    }
    editor.setSchema(schema, panel.dataset.dialect || "standard", panel.dataset.defaultSchema);
  }

  function attachAll() {
    if (!window.BizSQLEditor) return;
    document.querySelectorAll("textarea[data-sql-editor]").forEach(function (textarea) {
      if (editorOf(textarea)) return;
      var label = textarea.id ? document.querySelector('label[for="' + textarea.id + '"]') : null;
      var editor = window.BizSQLEditor.attach(textarea, {
        nonce: nonce,
        label: label ? label.textContent.replace(/:\s*$/, "").trim() : "SQL query",
        describedBy: textarea.getAttribute("aria-describedby") || "",
      });
      if (label) {
        // The label names a textarea that is hidden now: it focuses the editor instead.
        label.addEventListener("click", function (event) {
          event.preventDefault();
          editor.view.focus();
        });
      }
    });
    applySchema();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-insert]") : null;
    if (!button) return;
    var editor = currentEditor();
    if (!editor) return;
    event.preventDefault();
    editor.insert(button.dataset.insert);
  });

  // htmx swapped in a schema browser (or a form): attach and feed the editor again.
  document.addEventListener("htmx:afterSettle", attachAll);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", attachAll);
  } else {
    attachAll();
  }
})();
