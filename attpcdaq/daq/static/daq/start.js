/* The status page's Start dialog: Start asks for the run's title, class, comment and
 * limits before it posts.
 *
 * The Start button (data-start-dialog) lives in the system controls, which the polls
 * replace; the dialog does not, so what is being typed survives them. Each opening
 * fills it from the previous run as the server knows it now (GET data-prefill-url).
 * "Start without details" posts that prefill as it is, without limits. The answer is
 * a toast (daq/live.js shows it); a refusal is also shown in the dialog, each wrong
 * field marked with its message (the X-Field-Errors header), and the dialog stays open.
 */
(function () {
  "use strict";

  const dialog = document.getElementById("start-dialog");
  if (!dialog) return;
  const form = document.getElementById("start-form");
  const submit = document.getElementById("start-submit");
  const skip = document.getElementById("start-skip");
  const error = document.getElementById("start-error");
  const prefillScript = document.getElementById("start-prefill");
  let prefill = prefillScript ? JSON.parse(prefillScript.textContent) : {};

  function clearErrors() {
    error.hidden = true;
    form.querySelectorAll(".is-invalid").forEach((el) => el.classList.remove("is-invalid"));
    form.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; });
  }

  function fill(values) {
    form.elements.title.value = values.title || "";
    form.elements.run_class.value = values.run_class || "";
    form.elements.comment.value = values.comment || "";
    form.elements.limit_duration.value = "";
    form.elements.limit_events.value = "";
    form.elements.limit_data.value = "";
    form.elements.auto_restart.checked = false;
    const help = document.getElementById("start-help");
    help.textContent = (values.previous === null || values.previous === undefined
      ? "The first run of the experiment."
      : `Filled in from run ${values.previous}.`) +
      " Everything can be changed on the run's page afterwards.";
  }

  document.addEventListener("click", (evt) => {
    const button = evt.target.closest && evt.target.closest("[data-start-dialog]");
    if (!button) return;
    clearErrors();
    fill(prefill);
    submit.disabled = skip.disabled = false;
    dialog.showModal();
    form.elements.title.focus();
    fetch(form.dataset.prefillUrl, { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((values) => {
        if (!values) return;
        const untouched = form.elements.title.value === (prefill.title || "") &&
          form.elements.comment.value === (prefill.comment || "") &&
          form.elements.run_class.value === (prefill.run_class || "");
        prefill = values;
        if (untouched) fill(values);
      })
      .catch(() => {});
  });

  document.getElementById("start-cancel").addEventListener("click", () => dialog.close());

  function post() {
    clearErrors();
    submit.disabled = skip.disabled = true;
    htmx.ajax("POST", form.dataset.url, { source: form, target: "#toasts", swap: "afterbegin" });
  }

  form.addEventListener("submit", (evt) => {
    evt.preventDefault();
    post();
  });

  skip.addEventListener("click", () => {
    fill(prefill);
    post();
  });

  form.addEventListener("htmx:afterRequest", (evt) => {
    submit.disabled = skip.disabled = false;
    const xhr = evt.detail.xhr;
    if (evt.detail.successful) {
      dialog.close();
      return;
    }
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
