/* The status page's choice for files written while no run was open.
 *
 * A button with data-unattributed-dialog names what to post (data-url), the decision
 * ("run" or "aside", data-decision), the runs to choose from, newest first
 * (data-runs, comma-separated numbers; the first is chosen), the dialog's title, help
 * and submit word (data-title, data-help, data-verb). The buttons live in the panel
 * the polls replace; the dialog does not, so a note being typed survives them. The
 * answer is a toast (daq/live.js shows it); a refusal is also shown in the dialog,
 * which stays open.
 */
(function () {
  "use strict";

  const dialog = document.getElementById("unattributed-dialog");
  if (!dialog) return;
  const form = document.getElementById("unattributed-form");
  const runField = document.getElementById("unattributed-run-field");
  const run = document.getElementById("unattributed-run");
  const note = document.getElementById("unattributed-note");
  const submit = document.getElementById("unattributed-submit");
  const error = document.getElementById("unattributed-error");
  let url = null;

  document.addEventListener("click", (evt) => {
    const button = evt.target.closest && evt.target.closest("[data-unattributed-dialog]");
    if (!button || button.disabled) return;
    url = button.dataset.url;
    const decision = button.dataset.decision;
    document.getElementById("unattributed-decision").value = decision;
    document.getElementById("unattributed-title").textContent = button.dataset.title || "";
    document.getElementById("unattributed-dialog-help").textContent = button.dataset.help || "";
    run.replaceChildren(...(button.dataset.runs || "").split(",").filter(Boolean).map(
      (number, i) => new Option(i === 0 ? `${number} (the latest)` : number, number)));
    runField.hidden = decision !== "run";
    run.disabled = decision !== "run"; // a disabled field is not posted
    note.value = "";
    submit.textContent = button.dataset.verb || "OK";
    submit.disabled = false;
    error.hidden = true;
    dialog.showModal();
    (decision === "run" ? run : note).focus();
  });

  document.getElementById("unattributed-cancel").addEventListener("click", () => dialog.close());

  form.addEventListener("submit", (evt) => {
    evt.preventDefault();
    if (!url) return;
    submit.disabled = true;
    htmx.ajax("POST", url, { source: form, target: "#toasts", swap: "afterbegin" });
  });

  form.addEventListener("htmx:afterRequest", (evt) => {
    submit.disabled = false;
    if (evt.detail.successful) {
      url = null;
      dialog.close();
      return;
    }
    const answer = document.createElement("template");
    answer.innerHTML = evt.detail.xhr ? evt.detail.xhr.responseText : "";
    const body = answer.content.querySelector(".toast-body");
    const xhr = evt.detail.xhr;
    error.textContent = body ? body.textContent.trim()
      : xhr && xhr.status ? `The server answered ${xhr.status} ${xhr.statusText}.`
        : "No answer from the server: try again.";
    error.hidden = false;
  });
})();
