// The entry of codemirror-sql.min.js (rebuilt by scripts/vendor_codemirror.sh): a CodeMirror 6
// SQL editor over a <textarea>, exposed as window.BizSQLEditor. The textarea stays the form
// field: the editor writes every change back into it, so a form posts (and htmx includes)
// what is typed, and the page works without JavaScript.
import {
  autocompletion, closeBrackets, closeBracketsKeymap, completeFromList, completionKeymap,
} from "@codemirror/autocomplete"
import {defaultKeymap, history, historyKeymap} from "@codemirror/commands"
import {PostgreSQL, SQLite, StandardSQL, sql} from "@codemirror/lang-sql"
import {bracketMatching, indentOnInput, syntaxHighlighting} from "@codemirror/language"
import {classHighlighter} from "@lezer/highlight"
import {Compartment, EditorState} from "@codemirror/state"
import {
  EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers,
  placeholder,
} from "@codemirror/view"

const DIALECTS = {postgresql: PostgreSQL, sqlite: SQLite, standard: StandardSQL}

// Every column name of a schema namespace ({table: [columns]} or {schema: {table: [...]}}).
function columnsOf(namespace, found = new Set()) {
  if (Array.isArray(namespace)) {
    for (const column of namespace) found.add(typeof column == "string" ? column : column.label)
  } else if (namespace && typeof namespace == "object") {
    for (const inner of Object.values(namespace)) columnsOf(inner, found)
  }
  return found
}

function language(options) {
  const config = {dialect: DIALECTS[options.dialect] || StandardSQL, upperCaseKeywords: true}
  if (options.schema) config.schema = options.schema
  if (options.defaultSchema) config.defaultSchema = options.defaultSchema
  const support = sql(config)
  if (!options.schema) return support
  // lang-sql completes a column after its table ("orders.am"); a KPI query is mostly one
  // table, so the columns complete on their own too.
  const columns = [...columnsOf(options.schema)].map((label) => ({label, type: "property"}))
  return [support, support.language.data.of({autocomplete: completeFromList(columns)})]
}

// options: {schema, dialect, defaultSchema, nonce, label, describedBy, className}
function attach(textarea, options = {}) {
  if (textarea.bizSqlEditor) return textarea.bizSqlEditor
  const lang = new Compartment()
  const extensions = [
    lineNumbers(),
    highlightActiveLineGutter(),
    history(),
    drawSelection(),
    indentOnInput(),
    bracketMatching(),
    closeBrackets(),
    autocompletion(),
    highlightActiveLine(),
    // Tokens get stable classes (tok-keyword, tok-string, ...): the page's stylesheet colours
    // them from its own variables, so both themes keep their contrast.
    syntaxHighlighting(classHighlighter),
    // No Tab binding: Tab leaves the editor, as it leaves any text field (no keyboard trap).
    keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
    EditorView.lineWrapping,
    // A class of ours on the editor (CodeMirror owns its element's class attribute).
    EditorView.editorAttributes.of({class: options.className || "sql-editor"}),
    lang.of(language(options)),
    EditorView.contentAttributes.of({
      "aria-label": options.label || "SQL query",
      ...(options.describedBy ? {"aria-describedby": options.describedBy} : {}),
    }),
    EditorView.updateListener.of((update) => {
      if (!update.docChanged) return
      textarea.value = update.state.doc.toString()
      textarea.dispatchEvent(new Event("input", {bubbles: true}))
    }),
  ]
  // CodeMirror writes its styles into a <style> element: under a CSP without
  // 'unsafe-inline' that element needs the page's nonce.
  if (options.nonce) extensions.push(EditorView.cspNonce.of(options.nonce))
  if (textarea.placeholder) extensions.push(placeholder(textarea.placeholder))
  const view = new EditorView({
    state: EditorState.create({doc: textarea.value, extensions}),
  })
  textarea.insertAdjacentElement("afterend", view.dom)
  textarea.hidden = true
  const form = textarea.form
  const sync = () => { textarea.value = view.state.doc.toString() }
  if (form) form.addEventListener("submit", sync)
  const editor = {
    view,
    setSchema(schema, dialect, defaultSchema) {
      options = {...options, schema, dialect, defaultSchema}
      view.dispatch({effects: lang.reconfigure(language(options))})
    },
    insert(text) {
      const range = view.state.selection.main
      view.dispatch({
        changes: {from: range.from, to: range.to, insert: text},
        selection: {anchor: range.from + text.length},
        scrollIntoView: true,
      })
      view.focus()
    },
    destroy() {
      if (form) form.removeEventListener("submit", sync)
      sync()
      view.destroy()
      textarea.hidden = false
      delete textarea.bizSqlEditor
    },
  }
  textarea.bizSqlEditor = editor
  return editor
}

window.BizSQLEditor = {attach}
