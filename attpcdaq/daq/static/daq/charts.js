/* The charts page: asks /runs/chart-data for the points the form chooses and draws them
 * with Chart.js (a scatter: one point per run; the tooltip names the run). The form's
 * choice is kept in the address, so a chart can be linked. */
(function () {
  "use strict";

  const form = document.getElementById("chart-form");
  const canvas = document.getElementById("run-chart");
  const message = document.getElementById("chart-message");
  if (!form || !canvas || !window.Chart) return;
  let chart = null;
  let asked = 0; // only the answer to the latest question is drawn

  function say(text, ok) {
    message.textContent = text;
    message.className = `small mb-2 ${ok ? "text-body-secondary" : "text-danger"}`;
  }

  function withUnits(label, units) {
    return units ? `${label} (${units})` : label;
  }

  function xTick(x) {
    return (value) => (x === "time" ? new Date(value).toLocaleString() : value);
  }

  async function draw() {
    const query = new URLSearchParams(new FormData(form));
    history.replaceState(null, "", `?${query}`);
    canvas.dataset.points = "";
    const mine = ++asked;
    let data;
    try {
      const answer = await fetch(`${form.dataset.url}?${query}`, { credentials: "same-origin" });
      data = await answer.json().catch(() => ({}));
      if (mine !== asked) return;
      if (!answer.ok) throw new Error(data.error || `The server answered ${answer.status}.`);
    } catch (error) {
      if (mine === asked) say(`No chart: ${error.message}`, false);
      return;
    }
    const points = data.points.map((p) => ({ x: p.x, y: p.y, run: p.run, title: p.title }));
    const yLabel = withUnits(data.y_label, data.units);
    if (chart) chart.destroy();
    chart = new window.Chart(canvas, {
      type: "scatter",
      data: { datasets: [{ label: yLabel, data: points, pointRadius: 4,
                           backgroundColor: "rgba(13, 110, 253, 0.7)" }] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          x: { type: "linear", title: { display: true, text: data.x_label },
               ticks: { callback: xTick(data.x) } },
          y: { title: { display: true, text: yLabel } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (ctx) => {
            const p = ctx.raw;
            const title = p.title ? ` · ${p.title}` : "";
            return `Run ${p.run}: ${p.y}${data.units ? " " + data.units : ""}${title}`;
          } } },
        },
      },
    });
    canvas.dataset.label = yLabel;
    canvas.dataset.points = String(points.length);
    const more = data.truncated ? " (the newest only)" : "";
    say(points.length ? `${points.length} run(s)${more}.`
      : `No run of ${data.experiment} has a value of ${data.y_label} yet.`, true);
  }

  form.addEventListener("submit", (evt) => { evt.preventDefault(); draw(); });
  form.addEventListener("change", () => draw());
  draw();
})();
