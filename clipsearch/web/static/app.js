// clipsearch web: keyboard navigation, and searching by a dropped, pasted or picked picture.
// The page works without this script (plain text search); nothing here talks to any other server.
"use strict";

document.documentElement.classList.add("js");

function tiles() {
  return Array.from(document.querySelectorAll("#results a"));
}

function columns(list) {
  if (list.length < 2) return 1;
  const top = list[0].getBoundingClientRect().top;
  const row = list.findIndex((a) => a.getBoundingClientRect().top !== top);
  return row === -1 ? list.length : row;
}

function move(by) {
  const list = tiles();
  if (!list.length) return;
  const at = list.indexOf(document.activeElement);
  const next = at === -1 ? 0 : Math.min(list.length - 1, Math.max(0, at + by));
  list[next].focus();
  list[next].scrollIntoView({ block: "nearest" });
}

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLSelectElement ||
    target instanceof HTMLTextAreaElement;
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const search = document.querySelector("input[name=q]");
  if (typing(event.target)) {
    if (event.key === "Escape") event.target.blur();
    if (event.key === "ArrowDown" && event.target === search && tiles().length) {
      event.preventDefault();
      move(0);
    }
    return;
  }
  const list = tiles();
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(list), ArrowDown: columns(list) }[event.key];
  if (step !== undefined && list.length) {
    event.preventDefault();
    move(document.activeElement && list.includes(document.activeElement) ? step : 0);
  } else if (event.key === "/") {
    event.preventDefault();
    search.focus();
    search.select();
  } else if (event.key === "m") {
    const focused = list.includes(document.activeElement) ? document.activeElement : null;
    const more = document.getElementById("more");
    if (focused) location.href = focused.dataset.more;
    else if (more) location.href = more.href;
  } else if (event.key === "Escape" || event.key === "Backspace") {
    const back = document.getElementById("back");
    if (back) {
      event.preventDefault();
      location.href = back.href;
    }
  }
});

function sendPicture(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const form = document.querySelector("form.upload");
  const input = form.querySelector("input[type=file]");
  const chosen = new DataTransfer();
  chosen.items.add(file);
  input.files = chosen.files;
  form.submit();
}

// Empty fields stay out of the address, so that it reads like the query: /?q=a+red+circle
function tidyAddress(form) {
  for (const field of form.querySelectorAll("input[name], select[name]")) {
    if (!field.value) field.disabled = true;
  }
}

window.addEventListener("pageshow", () => {
  for (const field of document.querySelectorAll("form.search [disabled]")) field.disabled = false;
});

document.addEventListener("DOMContentLoaded", () => {
  const search = document.querySelector("form.search");
  if (search) search.addEventListener("submit", () => tidyAddress(search));
  const input = document.querySelector("form.upload input[type=file]");
  if (input) input.addEventListener("change", () => input.files.length && document.querySelector("form.upload").submit());
  const hint = document.querySelector(".drop-hint");
  let depth = 0;
  document.addEventListener("dragenter", (event) => {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
    depth += 1;
    hint.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) hint.hidden = true;
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    hint.hidden = true;
    sendPicture(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = Array.from(event.clipboardData ? event.clipboardData.files : [])[0];
    if (file) {
      event.preventDefault();
      sendPicture(file);
    }
  });
});
