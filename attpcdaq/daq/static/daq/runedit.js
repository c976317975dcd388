/* The run page's edit form: a refusal is shown above the Save button, each wrong field
 * marked with its message (the X-Field-Errors header); nothing was saved. A success
 * reloads the page (HX-Refresh), which then lists the change.
 */
(function () {
  "use strict";

  const form = document.getElementById("run-edit-form");
  if (!form) return;
  const error = document.getElementById("run-edit-error");

  form.addEventListener("htmx:beforeRequest", () => {
    error.hidden = true;
    form.querySelectorAll(".is-invalid").forEach((el) => el.classList.remove("is-invalid"));
    form.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; });
  });

  form.addEventListener("htmx:afterRequest", (evt) => {
    if (evt.detail.successful) return;
    const xhr = evt.detail.xhr;
    const answer = document.createElement("template");
    answer.innerHTML = xhr ? xhr.responseText : "";
    const body = answer.content.querySelector(".toast-body");
    error.textContent = body ? body.textContent.trim()
      : xhr && xhr.status ? `The server answered ${xhr.status} ${xhr.statusText}.`
        : "No answer from the server: try again.";
    error.hidden = false;
    let fields = {};
    try { fields = JSON.parse((xhr && xhr.getResponseHeader("X-Field-Errors")) || "{}"); }
    catch (e) { fields = {}; }
    Object.entries(fields).forEach(([name, message]) => {
      const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
      const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      if (input) input.classList.add("is-invalid");
      if (slot) slot.textContent = message;
    });
  });
})();
