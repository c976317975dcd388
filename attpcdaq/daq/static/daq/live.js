/* Live updates of the status page, on top of htmx polling its fragment every second.
 *
 * The fragment brings every live region as an out-of-band swap. This script
 * - swaps a region, or a server row, only when its HTML changed: replacing a
 *   button between press and release loses the click;
 * - leaves alone the row whose configuration chooser someone is using, so the
 *   open list does not close under them;
 * - ticks the durations of open runs, from the server's clock;
 * - shows a banner when updates stop, and shows action answers as toasts.
 */
(function () {
  "use strict";

  const seen = new Map(); // id of a region or row -> the HTML last swapped in
  const CHOOSER_IN_USE_MS = 15000; // a chooser left focused stops blocking after this
  const STALE_AFTER_MS = 4000;
  const clockOffset = Number(document.body.dataset.serverNow || Date.now()) - Date.now();
  let lastUpdate = Date.now();

  function chooserInUse() {
    const el = document.activeElement;
    if (el && el.matches("select[data-chooser]") &&
        Date.now() - (el.daqTouched || 0) < CHOOSER_IN_USE_MS) {
      return el;
    }
    return null;
  }

  function changed(el) {
    const html = el.outerHTML;
    if (seen.get(el.id) === html) return false;
    seen.set(el.id, html);
    return true;
  }

  // Swaps a table body's changed rows; returns false to let htmx swap it whole
  // (rows came or went).
  function swapRows(target, fresh) {
    const oldRows = Array.from(target.children);
    const newRows = Array.from(fresh.children);
    const busy = chooserInUse();
    if (oldRows.map((r) => r.id).join() !== newRows.map((r) => r.id).join()) {
      if (busy && target.contains(busy)) return true; // after the choice is made
      newRows.forEach(changed);
      return false;
    }
    newRows.forEach((row, i) => {
      if (busy && oldRows[i].contains(busy)) return;
      if (changed(row)) {
        oldRows[i].replaceWith(row);
        htmx.process(row);
      }
    });
    tick(); // a row swapped in brings its seconds empty
    return true;
  }

  document.addEventListener("htmx:oobBeforeSwap", (evt) => {
    const fresh = evt.detail.fragment.firstElementChild;
    if (!fresh || !fresh.id) return;
    if (evt.detail.target.hasAttribute("data-live-rows")) {
      evt.detail.shouldSwap = !swapRows(evt.detail.target, fresh);
    } else {
      evt.detail.shouldSwap = changed(fresh);
    }
  });

  for (const type of ["pointerdown", "keydown", "focusin"]) {
    document.addEventListener(type, (evt) => {
      if (evt.target.matches && evt.target.matches("select[data-chooser]")) {
        evt.target.daqTouched = Date.now();
      }
    }, true);
  }

  document.addEventListener("htmx:afterRequest", (evt) => {
    const elt = evt.detail.elt;
    if (elt.id === "poller") {
      if (evt.detail.successful) lastUpdate = Date.now();
    } else if (elt.matches("select[data-chooser]")) {
      // The choice was answered: let the next poll show the row as the server has it
      // (the chooser's value is the user's, not necessarily the server's).
      elt.daqTouched = 0;
      seen.delete(elt.closest("tr").id);
    }
  });

  // Answers of the actions: their error answers are toasts too (X-Toast); anything
  // else that failed (a CSRF or server error page) gets a toast written here.
  document.addEventListener("htmx:beforeSwap", (evt) => {
    const xhr = evt.detail.xhr;
    if (xhr.status < 400 || evt.detail.elt.id === "poller") return;
    if (xhr.getResponseHeader("X-Toast")) {
      evt.detail.shouldSwap = true;
    } else {
      showToast(`The server answered ${xhr.status} ${xhr.statusText}.`);
    }
  });
  document.addEventListener("htmx:sendError", (evt) => {
    if (evt.detail.elt.id !== "poller") showToast("No answer from the server.");
  });

  function showToast(text) {
    const toast = document.getElementById("toast-template").content
      .firstElementChild.cloneNode(true);
    toast.querySelector(".toast-body").textContent = text;
    document.getElementById("toasts").prepend(toast);
    startToast(toast);
  }

  function startToast(el) {
    const quick = el.classList.contains("text-bg-success");
    bootstrap.Toast.getOrCreateInstance(el, { delay: quick ? 5000 : 15000 }).show();
    el.addEventListener("hidden.bs.toast", () => el.remove());
  }

  htmx.onLoad((elt) => {
    if (elt.matches && elt.matches(".toast")) startToast(elt);
  });

  function hms(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const pad = (n) => String(n).padStart(2, "0");
    return `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  }

  function tick() {
    const now = Date.now() + clockOffset;
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = hms(now - Number(el.dataset.since));
    }
    // A transition's seconds on its server's row ("Starting… 14 s (usually 2 s)").
    for (const el of document.querySelectorAll("[data-elapsed-since]")) {
      el.textContent = `${Math.max(0, Math.floor((now - Number(el.dataset.elapsedSince)) / 1000))} s`;
    }
    // The tab's title says the state too, for a page kept in a background tab.
    const state = document.getElementById("overall-state");
    if (state) document.title = `${state.textContent.trim()} · AT-TPC DAQ`;
    const stale = Date.now() - lastUpdate > STALE_AFTER_MS;
    document.getElementById("stale-banner").classList.toggle("d-none", !stale);
  }

  // A hidden tab does not poll; coming back is not "out of date" until a poll fails.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) lastUpdate = Date.now();
  });
  document.addEventListener("htmx:oobAfterSwap", tick);
  setInterval(tick, 1000);
  tick();
})();
