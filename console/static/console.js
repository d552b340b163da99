// crumbs console: a little behaviour on top of plain forms and links; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Selects that choose a range submit their form at once.
  for (const sel of document.querySelectorAll("select.autosubmit")) {
    sel.addEventListener("change", () => sel.form.submit());
  }
  // Forms that change much ask first.
  for (const form of document.querySelectorAll("form.confirm")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm || "Sure?")) {
        ev.preventDefault();
      }
    });
  }
});
