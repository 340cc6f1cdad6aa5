// spanloom dashboard: small conveniences on top of pages that work without JavaScript.
// Loaded as a file (the Content-Security-Policy allows no inline script); it only reads the DOM
// and never writes HTML, so text from spans cannot turn into markup here.
"use strict";

document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", () => {
  // The project picker switches on change; without JS its "Go" button does.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  for (const form of document.querySelectorAll("form.filters")) {
    // Custom dates only matter when "Custom" is the time range.
    const range = form.querySelector("select[data-range]");
    const sync = () => form.classList.toggle("preset", range !== null && range.value !== "custom");
    if (range) range.addEventListener("change", sync);
    sync();
    // Empty fields stay out of the URL, so a shared link shows only the filters that are set.
    form.addEventListener("submit", () => {
      for (const field of form.elements) {
        if (field.name && field.value === "") field.disabled = true;
      }
    });
  }
  // Coming back (bfcache) to a page whose form disabled its empty fields: enable them again.
  window.addEventListener("pageshow", () => {
    for (const field of document.querySelectorAll("form.filters [disabled]")) field.disabled = false;
  });

  // Trace page: expand or collapse every span.
  for (const button of document.querySelectorAll("button[data-expand]")) {
    button.addEventListener("click", () => {
      const open = button.dataset.expand === "open";
      for (const details of document.querySelectorAll(".spans > .span > details")) details.open = open;
    });
  }

  // A link to #span-ID or #first-error opens that span.
  const openTarget = () => {
    let id = "";
    try {
      id = decodeURIComponent(location.hash.slice(1));
    } catch {
      return;
    }
    const target = id && document.getElementById(id);
    if (!target) return;
    const details = target.tagName === "DETAILS" ? target : target.querySelector(":scope > details");
    if (details) details.open = true;
  };
  window.addEventListener("hashchange", openTarget);
  openTarget();

  // Keyboard: j/k move through a list's rows, Enter opens the row, "/" focuses the search box.
  const table = document.querySelector("table[data-keynav]");
  const rows = table ? Array.from(table.tBodies[0].rows) : [];
  let selected = -1;
  const select = (index) => {
    if (!rows.length) return;
    if (selected >= 0) rows[selected].classList.remove("selected");
    selected = Math.max(0, Math.min(rows.length - 1, index));
    rows[selected].classList.add("selected");
    rows[selected].scrollIntoView({ block: "nearest" });
  };
  document.addEventListener("keydown", (event) => {
    const typing = event.target instanceof Element && event.target.closest("input, select, textarea, button");
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "/") {
      const search = document.querySelector("input[data-search]");
      if (search) {
        event.preventDefault();
        search.focus();
      }
    } else if (event.key === "j") {
      select(selected + 1);
    } else if (event.key === "k") {
      select(selected - 1);
    } else if (event.key === "Enter" && selected >= 0) {
      const link = rows[selected].querySelector("a");
      if (link) link.click();
    }
  });
});
