// Lookalike's page: plain JavaScript, no framework, no build step. The URL is the state (?id=,
// ?url=, ?view=duplicates, gallery filters), so the back button walks back through searches and a
// search can be shared; an upload keeps its image in the history entry (a Blob survives back/forward).
// Every request goes to the JSON API (/openapi.json); every failure is shown in words.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { stats: null, galleryKey: null, galleryPage: 0, galleryPages: 1, galleryLoading: false,
                current: null, upload: null, request: 0 };

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...options });
  } catch (e) {
    throw new ApiError("Can't reach the Lookalike server. Is it still running?", 0);
  }
  if (response.status === 401) {
    window.location.href = "/login";
    throw new ApiError("Please log in.", 401);
  }
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const reason = body && body.error ? body.error : `the server answered ${response.status}`;
    throw new ApiError(friendly(response.status, reason), response.status);
  }
  return body;
}

function friendly(status, reason) {
  // The server names the field ("image: ..."); a person needs only the reason.
  const plain = reason.replace(/^(image|url): /, "");
  const limit = state.stats ? Math.round(state.stats.max_upload_bytes / 1048576) : 20;
  if (status === 413) return `That file is too large: the limit is ${limit} MB.`;
  if (status === 415) return plain.charAt(0).toUpperCase() + plain.slice(1) + ".";
  if (status === 422) return `That image could not be read: ${plain}`;
  if (status === 404) return `Not found: ${reason}`;
  if (status === 403) return `Refused: ${reason}`;
  return reason;
}

// ---------------------------------------------------------------- small helpers

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of [].concat(children)) if (c) node.append(c);
  return node;
}

function showAlert(message) {
  const box = $("alert");
  box.replaceChildren(el("span", { text: message }),
    el("button", { type: "button", "aria-label": "Dismiss", text: "×", onclick: () => { box.hidden = true; } }));
  box.hidden = false;
}
function clearAlert() { $("alert").hidden = true; }

function loading(on, text = "Searching…") {
  $("loading").hidden = !on;
  $("loading-text").textContent = text;
}

function showView(name) {
  for (const v of ["gallery", "results", "duplicates"]) $(`view-${v}`).hidden = v !== name;
  $("tab-gallery").toggleAttribute("aria-current", name === "gallery");
  if (name === "gallery") $("tab-gallery").setAttribute("aria-current", "page");
  $("tab-duplicates").toggleAttribute("aria-current", name === "duplicates");
  if (name === "duplicates") $("tab-duplicates").setAttribute("aria-current", "page");
}

function fmtMs(ms) { return ms < 10 ? ms.toFixed(1) : Math.round(ms).toString(); }
function fmtBytes(n) {
  if (n > 1073741824) return (n / 1073741824).toFixed(1) + " GB";
  if (n > 1048576) return (n / 1048576).toFixed(1) + " MB";
  return Math.max(1, Math.round(n / 1024)) + " KB";
}

function tile(item, href, caption) {
  return el("a", { class: "tile", href, "data-id": item.id, title: `${item.label} — ${item.path}` }, [
    el("img", { src: item.thumbnail, alt: item.label, loading: "lazy", decoding: "async", width: 160, height: 160 }),
    el("span", { class: "caption", text: caption }),
  ]);
}

// ---------------------------------------------------------------- settings (from /api/stats)

function settings() {
  const p = new URLSearchParams();
  p.set("k", $("k-select").value);
  if ($("metric-select").value !== "cosine") p.set("metric", $("metric-select").value);
  if ($("method-select").value !== "exact") p.set("method", $("method-select").value);
  const min = $("min-score").value.trim();
  if (min !== "") p.set("min_score", min);
  // Spatial verification of uploads and URLs (library images are the photo itself).
  if ($("verify-check").checked) p.set("verify", "100");
  return p;
}

function applySettings(params) {
  if (params.get("k")) ensureOption($("k-select"), params.get("k"));
  if (params.get("metric")) $("metric-select").value = params.get("metric");
  if (params.get("method")) $("method-select").value = params.get("method");
  $("min-score").value = params.get("min_score") || "";
  $("verify-check").checked = !!params.get("verify");
}

function ensureOption(select, value) {
  if (![...select.options].some((o) => o.value === value)) select.append(el("option", { text: value }));
  select.value = value;
}

async function loadStats() {
  try {
    const s = await api("/api/stats");
    state.stats = s;
    $("metric-select").replaceChildren(...s.metrics.map((m) => el("option", { value: m.name, text: m.name, title: m.explanation })));
    $("method-select").replaceChildren(...s.methods.map((m) => el("option", { value: m, text: m })));
    const kSelect = $("k-select");
    [...kSelect.options].forEach((o) => { if (+o.value > s.max_k) o.remove(); });
    $("label-list").replaceChildren(...s.labels.map((l) => el("option", { value: l.label })));
    $("foot-stats").textContent = `${s.images.toLocaleString()} images · ${s.labels.length} labels · ${s.model || "no model"} · ${fmtBytes(s.library_bytes)}`;
    renderChips(s.labels);
  } catch (e) {
    showAlert(e.message);
  }
}

function renderChips(labels) {
  // The most common labels as one-click filters; every label is in the filter's suggestions.
  const top = [...labels].sort((a, b) => b.count - a.count).slice(0, 12);
  const active = new URLSearchParams(location.search).get("label");
  $("label-chips").replaceChildren(...top.map((l) => el("button", {
    type: "button", class: "chip", "aria-pressed": String(active === l.label),
    onclick: () => navigate(active === l.label ? "/" : `/?label=${encodeURIComponent(l.label)}`),
  }, [l.label, el("span", { class: "n", text: l.count })])));
}

// ---------------------------------------------------------------- gallery (infinite scroll)

const PER_PAGE = 120;
let galleryObserver = null;

function galleryQuery(page) {
  const params = new URLSearchParams(location.search);
  const q = new URLSearchParams({ page, per_page: PER_PAGE });
  if (params.get("label")) q.set("label", params.get("label"));
  if (params.get("q")) q.set("q", params.get("q"));
  return q;
}

async function showGallery() {
  showView("gallery");
  document.title = "Lookalike";
  const params = new URLSearchParams(location.search);
  $("filter-input").value = params.get("q") || params.get("label") || "";
  if (state.stats) renderChips(state.stats.labels);
  const key = `${params.get("label") || ""}|${params.get("q") || ""}`;
  if (key === state.galleryKey) return; // coming back: keep the grid and its scroll position
  state.galleryKey = key;
  state.galleryPage = 0;
  state.galleryPages = 1;
  $("gallery-grid").replaceChildren();
  $("gallery-empty").hidden = true;
  await nextGalleryPage();
  if (!galleryObserver) {
    galleryObserver = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !$("view-gallery").hidden) nextGalleryPage();
    }, { rootMargin: "800px" });
    galleryObserver.observe($("gallery-sentinel"));
  }
}

async function nextGalleryPage() {
  if (state.galleryLoading || state.galleryPage >= state.galleryPages) return;
  state.galleryLoading = true;
  const key = state.galleryKey;
  try {
    const page = await api(`/api/images?${galleryQuery(state.galleryPage + 1)}`);
    if (key !== state.galleryKey) return;
    state.galleryPage = page.page;
    state.galleryPages = page.pages;
    const fragment = document.createDocumentFragment();
    for (const item of page.items) fragment.append(tile(item, `/?id=${item.id}`, item.label));
    $("gallery-grid").append(fragment);
    $("gallery-count").textContent = `${page.total.toLocaleString()} image${page.total === 1 ? "" : "s"}`;
    $("gallery-empty").hidden = page.total > 0;
  } catch (e) {
    showAlert(e.message);
  } finally {
    state.galleryLoading = false;
  }
  // Fill a tall screen without waiting for a scroll.
  const sentinel = $("gallery-sentinel").getBoundingClientRect();
  if (key === state.galleryKey && sentinel.top < window.innerHeight + 800) nextGalleryPage();
}

// ---------------------------------------------------------------- search

async function runSearch(kind, params) {
  const token = ++state.request;
  showView("results");
  loading(true, kind === "upload" ? "Reading your image…" : "Searching…");
  clearAlert();
  try {
    let answer;
    const query = settings();
    for (const name of ["box"]) if (params.get(name)) query.set(name, params.get(name));
    if (kind === "id") {
      query.set("id", params.get("id"));
      answer = await api(`/api/search?${query}`);
    } else if (kind === "url") {
      query.set("url", params.get("url"));
      answer = await api(`/api/search?${query}`, { method: "POST" });
    } else if (kind === "upload") {
      const form = new FormData();
      form.append("image", state.upload.blob, state.upload.name);
      answer = await api(`/api/search?${query}`, { method: "POST", body: form });
    }
    if (token !== state.request) return;
    renderResults(answer, kind, params);
  } catch (e) {
    if (token !== state.request) return;
    showAlert(e.message);
    if (!state.current) {
      $("results-grid").replaceChildren();
      $("results-note").hidden = true;
    }
  } finally {
    if (token === state.request) loading(false);
  }
}

function scoreBar(percent) {
  // Width through the CSSOM: the page's Content-Security-Policy forbids inline style attributes.
  const fill = el("span");
  fill.style.width = `${percent}%`;
  return el("div", { class: "bar", "aria-hidden": "true" }, fill);
}

function renderResults(answer, kind, params) {
  state.current = { answer, kind, params };
  const q = answer.query;
  const img = $("query-image");
  if (kind === "upload") img.src = state.upload.url;
  else if (kind === "url") img.src = params.get("url");
  else img.src = `/api/images/${q.id}/file`;
  img.alt = q.label ? `Query: ${q.label}` : "Query image";
  $("results-title").textContent = q.label || (kind === "upload" ? state.upload.name : kind === "url" ? "Image from URL" : "Query");
  $("query-path").textContent = q.path || q.summary;
  $("query-tags").replaceChildren(...q.tags.slice(0, 5).map((t) => el("li", { text: `${t.name} ${(t.probability * 100).toFixed(0)}%`, title: "ImageNet tag" })));
  const embed = answer.embed_ms > 0 ? ` (embedding ${fmtMs(answer.embed_ms)} ms)` : "";
  // Results are ordered by `score` (re-ranked where re-ranking ran); the raw cosine is shown beside it.
  const reranked = answer.reranking && answer.reranking !== "none"
    ? ` · re-ranked (${answer.reranking}${answer.precomputed ? ", made ahead by index" : ""})` : "";
  $("query-timing").textContent = `${answer.count} results in ${fmtMs(answer.ms)} ms${embed} · ${answer.metric} · ${answer.method}${reranked}`;
  const open = $("query-open");
  open.hidden = !q.id;
  if (q.id) open.href = `/api/images/${q.id}/file`;
  drawBox(params.get("box"));
  $("clear-box").hidden = !params.get("box");
  const note = $("results-note");
  note.hidden = !answer.note;
  note.textContent = answer.note ? answer.note.replace(/^no close match/, "No close match") : "";
  const maxScore = Math.max(...answer.results.map((r) => r.score), 1e-6);
  $("results-grid").replaceChildren(...answer.results.map((r) => el("li", { class: "result" }, [
    el("span", { class: "rank", text: `#${r.rank}` }),
    r.inliers ? el("span", { class: "verified", title: `${r.inliers} keypoints match the query under one shift, scale and rotation`, text: "✓ original" }) : null,
    tile(r, `/?id=${r.id}`, r.tags[0] ? r.tags[0].name : r.label),
    el("div", { class: "meta" }, [el("span", { class: "label", text: r.label }),
                                   el("span", { class: "score", title: `score ${r.score.toFixed(4)} (what the list is ordered by); cosine ${r.cosine.toFixed(4)} (plain similarity to the query)`,
                                                text: r.cosine.toFixed(3) === r.score.toFixed(3) ? r.score.toFixed(3) : `${r.score.toFixed(3)} · cos ${r.cosine.toFixed(2)}` })]),
    scoreBar(Math.max(2, 100 * r.score / maxScore)),
  ])));
  document.title = `${$("results-title").textContent} — Lookalike`;
  window.scrollTo({ top: 0 });
}

// ---------------------------------------------------------------- box on the query image

let drag = null;

function frameFraction(event) {
  const img = $("query-image").getBoundingClientRect();
  // object-fit: contain — the picture's own rectangle inside the element.
  const natural = $("query-image");
  const ratio = natural.naturalWidth && natural.naturalHeight ? natural.naturalWidth / natural.naturalHeight : img.width / img.height;
  let w = img.width, h = img.height;
  if (w / h > ratio) w = h * ratio; else h = w / ratio;
  const left = img.left + (img.width - w) / 2, top = img.top + (img.height - h) / 2;
  return { x: Math.min(1, Math.max(0, (event.clientX - left) / w)), y: Math.min(1, Math.max(0, (event.clientY - top) / h)), rect: { left, top, w, h } };
}

function drawBox(text, live) {
  const box = $("query-box");
  const parts = (live || (text ? text.split(",").map(Number) : null));
  if (!parts || parts.length !== 4 || parts.some(isNaN)) { box.hidden = true; return; }
  const img = $("query-image");
  const frame = $("query-frame").getBoundingClientRect();
  const fake = frameFraction({ clientX: 0, clientY: 0 }).rect;
  const [x, y, w, h] = parts;
  box.style.left = `${fake.left - frame.left + x * fake.w}px`;
  box.style.top = `${fake.top - frame.top + y * fake.h}px`;
  box.style.width = `${w * fake.w}px`;
  box.style.height = `${h * fake.h}px`;
  box.hidden = !live && !img.complete;
}

function setupBox() {
  const frame = $("query-frame");
  frame.addEventListener("pointerdown", (e) => {
    if (!state.current) return;
    const p = frameFraction(e);
    drag = { x0: p.x, y0: p.y, box: null };
    frame.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  frame.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const p = frameFraction(e);
    const x = Math.min(drag.x0, p.x), y = Math.min(drag.y0, p.y);
    drag.box = [x, y, Math.abs(p.x - drag.x0), Math.abs(p.y - drag.y0)];
    drawBox(null, drag.box);
  });
  frame.addEventListener("pointerup", () => {
    if (!drag) return;
    const b = drag.box;
    drag = null;
    if (!b || b[2] < 0.04 || b[3] < 0.04) { drawBox(state.current && state.current.params.get("box")); return; }
    const text = b.map((v) => v.toFixed(4)).join(",");
    searchWithBox(text);
  });
  $("clear-box").addEventListener("click", () => searchWithBox(null));
  $("query-image").addEventListener("load", () => drawBox(state.current && state.current.params.get("box")));
  window.addEventListener("resize", () => drawBox(state.current && state.current.params.get("box")));
}

function searchWithBox(text) {
  if (!state.current) return;
  const params = new URLSearchParams(state.current.params);
  if (text) params.set("box", text); else params.delete("box");
  if (state.current.kind === "upload") {
    history.pushState({ upload: { blob: state.upload.blob, name: state.upload.name }, box: text }, "", "/?upload=1");
    runSearch("upload", params);
  } else {
    navigate(`/?${params}`);
  }
}

// ---------------------------------------------------------------- uploads (picker, drop, paste)

function startUpload(file) {
  if (!file) return;
  const limit = state.stats ? state.stats.max_upload_bytes : 20 * 1048576;
  if (file.size > limit) {
    showAlert(`That file is too large: ${fmtBytes(file.size)}, the limit is ${Math.round(limit / 1048576)} MB.`);
    return;
  }
  if (state.upload && state.upload.url) URL.revokeObjectURL(state.upload.url);
  state.upload = { blob: file, name: file.name || "pasted image", url: URL.createObjectURL(file) };
  history.pushState({ upload: { blob: file, name: state.upload.name } }, "", "/?upload=1");
  runSearch("upload", new URLSearchParams());
}

function setupUploads() {
  $("upload-button").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (e) => { startUpload(e.target.files[0]); e.target.value = ""; });
  let depth = 0;
  window.addEventListener("dragenter", (e) => { if (hasFiles(e)) { depth++; $("drop").hidden = false; e.preventDefault(); } });
  window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) $("drop").hidden = true; });
  window.addEventListener("drop", (e) => {
    depth = 0;
    $("drop").hidden = true;
    if (!hasFiles(e)) return;
    e.preventDefault();
    startUpload(e.dataTransfer.files[0]);
  });
  window.addEventListener("paste", (e) => {
    if (e.target && e.target.tagName === "INPUT") return;
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.kind === "file");
    if (item) { e.preventDefault(); startUpload(item.getAsFile()); }
  });
}
function hasFiles(e) { return e.dataTransfer && [...e.dataTransfer.types].includes("Files"); }

// ---------------------------------------------------------------- duplicates

let dupTimer = null;
async function showDuplicates() {
  showView("duplicates");
  document.title = "Duplicates — Lookalike";
  const params = new URLSearchParams(location.search);
  const threshold = params.get("threshold") || "0.10";
  $("threshold").value = threshold;
  $("threshold-value").textContent = Number(threshold).toFixed(2);
  loading(true, "Comparing every pair…");
  try {
    const answer = await api(`/api/duplicates?threshold=${encodeURIComponent(threshold)}`);
    $("dup-count").textContent = `${answer.groups.length} group${answer.groups.length === 1 ? "" : "s"} · ${fmtMs(answer.ms)} ms`;
    if (!answer.groups.length) {
      $("dup-groups").replaceChildren(el("p", { class: "empty", text: "No duplicates at this closeness. Slide right to be more lenient." }));
      return;
    }
    $("dup-groups").replaceChildren(...answer.groups.map((g) => el("section", { class: "dup-group" }, [
      el("header", {}, [el("span", { class: "kind", text: g.kind === "exact" ? "same file" : "near" }),
                        el("span", { text: `${g.images.length} images` }),
                        g.kind === "near" ? el("span", { text: `max distance ${g.max_distance.toFixed(3)}` }) : null]),
      el("div", { class: "grid" }, g.images.map((m) => m.id
        ? tile({ id: m.id, thumbnail: m.thumbnail, label: m.label || "", path: m.path }, `/?id=${m.id}`, m.path)
        : el("span", { text: m.path }))),
    ])));
  } catch (e) {
    showAlert(e.message);
  } finally {
    loading(false);
  }
}

// ---------------------------------------------------------------- routing

function navigate(url, replace = false) {
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  route();
}

async function route() {
  const params = new URLSearchParams(location.search);
  applySettings(params);
  if (params.get("id")) return runSearch("id", params);
  if (params.get("url")) { $("url-input").value = params.get("url"); return runSearch("url", params); }
  if (params.get("upload")) {
    const saved = history.state && history.state.upload;
    if (saved && saved.blob) {
      if (!state.upload || state.upload.blob !== saved.blob) {
        state.upload = { blob: saved.blob, name: saved.name, url: URL.createObjectURL(saved.blob) };
      }
      const p = new URLSearchParams();
      if (history.state.box) p.set("box", history.state.box);
      return runSearch("upload", p);
    }
    showAlert("That upload is no longer available: upload the image again.");
    return navigate("/", true);
  }
  if (params.get("view") === "duplicates") return showDuplicates();
  return showGallery();
}

async function random() {
  loading(true, "Picking a random image…");
  try {
    const answer = await api(`/api/random?${settings()}`);
    const params = settings();
    params.set("id", answer.query.id);
    history.pushState(null, "", `/?${params}`);
    applySettings(params);
    showView("results");
    clearAlert();
    renderResults(answer, "id", new URLSearchParams(location.search));
  } catch (e) {
    showAlert(e.message);
  } finally {
    loading(false);
  }
}

function setup() {
  document.addEventListener("click", (e) => {
    // Same-page links go through history (fast, no reload); modified clicks open new tabs as usual.
    const a = e.target.closest("a");
    if (!a || a.target || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname !== "/") return;
    e.preventDefault();
    const params = new URLSearchParams(url.search);
    if (params.get("id")) {
      // Keep the current settings when following a result.
      const s = settings();
      for (const [k, v] of s) if (!params.has(k)) params.set(k, v);
      return navigate(`/?${params}`);
    }
    navigate(url.pathname + url.search);
  });
  $("random-button").addEventListener("click", random);
  $("url-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const url = $("url-input").value.trim();
    if (!/^https?:\/\//i.test(url)) { showAlert("Give an http:// or https:// address of an image."); return; }
    navigate(`/?url=${encodeURIComponent(url)}&${settings()}`);
  });
  let filterTimer = null;
  $("filter-input").addEventListener("input", (e) => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      const text = e.target.value.trim();
      const exact = state.stats && state.stats.labels.some((l) => l.label === text);
      navigate(text ? `/?${exact ? "label" : "q"}=${encodeURIComponent(text)}` : "/", true);
    }, 250);
  });
  for (const id of ["k-select", "metric-select", "method-select", "min-score", "verify-check"]) {
    $(id).addEventListener("change", () => {
      if (!state.current || $("view-results").hidden) return;
      const params = new URLSearchParams(state.current.params);
      for (const k of ["k", "metric", "method", "min_score", "verify"]) params.delete(k);
      for (const [k, v] of settings()) params.set(k, v);
      if (state.current.kind === "upload") runSearch("upload", params); else navigate(`/?${params}`);
    });
  }
  $("threshold").addEventListener("input", (e) => {
    $("threshold-value").textContent = Number(e.target.value).toFixed(2);
    clearTimeout(dupTimer);
    dupTimer = setTimeout(() => navigate(`/?view=duplicates&threshold=${e.target.value}`, true), 300);
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea") || e.metaKey || e.ctrlKey || e.altKey) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    if (e.key === "/") { e.preventDefault(); navigateToGalleryIfNeeded(); $("filter-input").focus(); }
    else if (e.key === "r" || e.key === "R") random();
    else if (e.key === "u" || e.key === "U") $("file-input").click();
    else if (e.key === "Escape") navigate("/");
  });
  window.addEventListener("popstate", route);
  setupBox();
  setupUploads();
}

function navigateToGalleryIfNeeded() { if ($("view-gallery").hidden) navigate("/"); }

setup();
loadStats().then(route);
