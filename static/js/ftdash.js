// Live fragments are swapped whole every few seconds; keep a <details data-keep-open> that the
// reader opened (e.g. the raw JSON) open across the swap instead of snapping it shut.
(function () {
  const opened = new Set();
  document.addEventListener("htmx:beforeSwap", function (event) {
    event.detail.target.querySelectorAll("details[data-keep-open][id]").forEach(function (el) {
      if (el.open) { opened.add(el.id); } else { opened.delete(el.id); }
    });
  });
  document.addEventListener("htmx:afterSettle", function () {
    opened.forEach(function (id) {
      const el = document.getElementById(id);
      if (el) { el.open = true; }
    });
  });
})();
