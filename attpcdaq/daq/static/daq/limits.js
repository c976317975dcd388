/* Timed runs on the status page: the countdown of the time left, and the limits dialog.
 *
 * An element with data-until (ms since the epoch, the server's clock) shows the time
 * left until then, ticked here. A button with data-limits-dialog opens the dialog with
 * the run's limits (data-url, data-seconds, data-bytes, data-events, data-restart);
 * the button lives in the run panel the polls replace, the dialog does not, so what is
 * being typed survives them. The answer is a toast (daq/live.js shows it); a refusal is
 * also said in the dialog, which stays open.
 */
(function () {
  "use strict";

  const clockOffset = Number(document.body.dataset.serverNow || Date.now()) - Date.now();

  function hms(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const pad = (n) => String(n).padStart(2, "0");
    return `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  }

  function tick() {
    const now = Date.now() + clockOffset;
    for (const el of document.querySelectorAll("[data-until]")) {
      el.textContent = hms(Number(el.dataset.until) - now);
    }
  }
  document.addEventListener("htmx:oobAfterSwap", tick);
  setInterval(tick, 1000);
  tick();

  const dialog = document.getElementById("limits-dialog");
  if (!dialog) return;
  const form = document.getElementById("limits-form");
  const submit = document.getElementById("limits-submit");
  const error = document.getElementById("limits-error");
  let url = null;

  document.addEventListener("click", (evt) => {
    const button = evt.target.closest && evt.target.closest("[data-limits-dialog]");
    if (!button) return;
    url = button.dataset.url;
    document.getElementById("limits-title").textContent = button.dataset.title || "Limits of the run";
    document.getElementById("limits-seconds").value = button.dataset.seconds || "";
    document.getElementById("limits-bytes").value = button.dataset.bytes || "";
    document.getElementById("limits-events").value = button.dataset.events || "";
    document.getElementById("limits-restart").checked = button.hasAttribute("data-restart");
    submit.disabled = false;
    error.hidden = true;
    dialog.showModal();
  });

  document.getElementById("limits-cancel").addEventListener("click", () => dialog.close());

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
