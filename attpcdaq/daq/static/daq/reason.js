/* The status page's reason dialog: Exclude, Include and Abort ask why before they post.
 *
 * A button with data-reason-dialog names what to post (data-url), the dialog's title
 * (data-title), its help (data-help), the submit button's word (data-verb) and whether
 * a reason is required (data-required). The buttons live in rows the polls replace;
 * the dialog does not, so a reason being typed survives them. The answer is a toast
 * (daq/live.js shows it); a refusal is also shown in the dialog, which stays open to fix
 * the reason.
 */
(function () {
  "use strict";

  const dialog = document.getElementById("reason-dialog");
  if (!dialog) return;
  const form = document.getElementById("reason-form");
  const input = document.getElementById("reason-input");
  const submit = document.getElementById("reason-submit");
  const error = document.getElementById("reason-error");
  let url = null;

  document.addEventListener("click", (evt) => {
    const button = evt.target.closest && evt.target.closest("[data-reason-dialog]");
    if (!button) return;
    url = button.dataset.url;
    const required = button.hasAttribute("data-required");
    document.getElementById("reason-title").textContent = button.dataset.title || "";
    document.getElementById("reason-help").textContent = button.dataset.help || "";
    document.getElementById("reason-optional").hidden = required;
    input.required = required;
    input.value = "";
    submit.textContent = button.dataset.verb || "OK";
    submit.className = `btn ${button.dataset.verb === "Include" ? "btn-success" : "btn-danger"}`;
    submit.disabled = false;
    error.hidden = true;
    dialog.showModal();
    input.focus();
  });

  document.getElementById("reason-cancel").addEventListener("click", () => dialog.close());

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
    // Refused: say why here, above the page the modal dialog covers.
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
