/* The log page: shows refusals where the log would be, and the end of the log first.
 *
 * The log request and the command it polls answer refusals (no log path, an
 * unknown command) with an error status and X-Log-Answer: those are meant to be
 * shown in place. Anything else that fails (a CSRF or server error page, no
 * answer at all) is said in the banner above the log; a poll that fails retries.
 */
(function () {
  "use strict";

  const problem = document.getElementById("log-problem");

  function say(text) {
    problem.textContent = text;
    problem.classList.toggle("d-none", !text);
  }

  document.addEventListener("htmx:beforeSwap", (evt) => {
    const xhr = evt.detail.xhr;
    if (xhr.status >= 400 && xhr.getResponseHeader("X-Log-Answer")) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterRequest", (evt) => {
    if (evt.detail.successful) say("");
  });
  document.addEventListener("htmx:responseError", (evt) => {
    const xhr = evt.detail.xhr;
    say(`The server answered ${xhr.status} ${xhr.statusText}.`);
  });
  document.addEventListener("htmx:sendError", () => {
    say("No answer from the server.");
  });

  // A log is read from its end: show the last lines. (onLoad, not a swap event: the
  // poll replaces its own element, whose events no longer reach the document.)
  htmx.onLoad((elt) => {
    const tail = elt.querySelector && elt.querySelector("pre.log-tail");
    if (tail) tail.scrollTop = tail.scrollHeight;
  });
})();
