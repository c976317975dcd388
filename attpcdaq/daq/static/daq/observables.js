/* The observables page: drag a row by its handle to change the order (SortableJS); the
 * new order is POSTed, every id once, and the page says whether it was saved. A
 * remove asks first. */
(function () {
  "use strict";

  const rows = document.getElementById("observable-rows");
  const message = document.getElementById("order-message");

  function say(text, ok) {
    message.textContent = text;
    message.className = `small mb-2 ${ok ? "text-success" : "text-danger"}`;
  }

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (evt) => {
      if (!window.confirm(form.dataset.confirm)) evt.preventDefault();
    });
  });

  if (!rows || !rows.dataset.orderUrl || !window.Sortable) return;
  const csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  let before = null;

  async function save() {
    const ids = Array.from(rows.querySelectorAll("tr[data-id]")).map((r) => r.dataset.id);
    const body = new URLSearchParams({ experiment: rows.dataset.experiment });
    ids.forEach((id) => body.append("ids", id));
    say("Saving the order…", true);
    try {
      const answer = await fetch(rows.dataset.orderUrl, {
        method: "POST", body, headers: { "X-CSRFToken": csrf }, credentials: "same-origin",
      });
      const data = await answer.json().catch(() => ({}));
      if (!answer.ok) throw new Error(data.error || `The server answered ${answer.status}.`);
      say(data.message || "Order saved.", true);
      rows.dataset.saved = ids.join(",");
    } catch (error) {
      // The order shown is what the server has: put the rows back.
      if (before) before.forEach((row) => rows.appendChild(row));
      say(`The order was not saved: ${error.message}`, false);
    }
  }

  window.Sortable.create(rows, {
    handle: ".drag-handle",
    draggable: "tr[data-id]",
    animation: 150,
    forceFallback: true, // mouse and touch events, the same in every browser
    onStart: () => { before = Array.from(rows.children); },
    onEnd: (evt) => { if (evt.oldIndex !== evt.newIndex) save(); },
  });
})();
