/* The runs page: a row's edit form comes back with its errors (400, X-Sheet-Form) and
 * is swapped in like a success; any other failure is said above the table. */
(function () {
  "use strict";

  const message = document.getElementById("sheet-message");

  function say(text, ok) {
    if (!message) return;
    message.textContent = text;
    message.className = `small mb-2 ${ok ? "text-success" : "text-danger"}`;
  }

  document.addEventListener("htmx:beforeSwap", (evt) => {
    const xhr = evt.detail.xhr;
    if (xhr.status >= 400 && xhr.getResponseHeader("X-Sheet-Form")) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
      say("Nothing was saved: correct the fields in red.", false);
    } else if (xhr.status >= 400) {
      say(`The server answered ${xhr.status} ${xhr.statusText}: nothing was saved.`, false);
    }
  });
  document.addEventListener("htmx:sendError", () => {
    say("No answer from the server: nothing was saved.", false);
  });
  // After a row came back: say what its answer said, and go to the first wrong field.
  document.addEventListener("htmx:afterSettle", () => {
    const saved = document.querySelector("#run-rows .sheet-saved:not([data-said])");
    if (saved) {
      saved.dataset.said = "1";
      say(saved.textContent.trim(), true);
    }
    const wrong = document.querySelector("#run-rows .is-invalid");
    if (wrong && !wrong.contains(document.activeElement)) wrong.focus();
  });
})();
