// geolocate workbench: the session page's map, drawing tools, photo crop selection and live updates.
// Everything it loads comes from this server (Leaflet and the Natural Earth outline are vendored).
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("session-data").textContent);
  const $ = (id) => document.getElementById(id);

  // -- live updates (Server-Sent Events) ------------------------------------------------------------
  // The server renders this page; a run's end is shown by rendering it again, but never under the
  // user's hands: while a form is being filled in (typed, or from the map, a crop or an example), a
  // clip plays or a form has just been sent, a notice offers the reload instead (a blind reload emptied
  // a half-written hint, dropped a drawn constraint and stopped a playing clip).
  // Lost events need no 30-s timer: EventSource reconnects, and its first event, "hello", says the state.
  let edited = false, sent = false;
  document.addEventListener("input", (e) => { if (e.isTrusted) edited = true; }, true);
  document.addEventListener("submit", () => { sent = true; }, true);
  const playing = () => [...document.querySelectorAll("video")].some((v) => !v.paused && !v.ended);
  const notice = (why) => { $("stale-why").textContent = why; $("stale").hidden = false; };
  function refresh(why) {
    if (sent) return;  // the form's answer is a fresh page
    if (edited || playing()) notice(why);
    else location.reload();
  }
  $("stale-reload").addEventListener("click", () => location.reload());
  const es = new EventSource(`/sessions/${cfg.id}/events`);
  es.addEventListener("step", (e) => {
    const d = JSON.parse(e.data);
    const li = document.createElement("li");
    li.textContent = `turn ${d.turn} [${d.node}] ${d.text}`;
    $("live").appendChild(li);
    $("status").textContent = "running";
  });
  es.addEventListener("paused", () => refresh("The run has paused or ended."));
  // The run may have ended between this page's rendering and the subscription: the first event says.
  es.addEventListener("hello", (e) => {
    if (cfg.running && !JSON.parse(e.data).running) refresh("The run has paused or ended.");
  });
  es.addEventListener("error", (e) => {
    if (e.data) notice(`The run stopped: ${JSON.parse(e.data).text}`);  // kept on screen to be read
  });

  // -- map ------------------------------------------------------------------------------------------
  const map = L.map("map", { worldCopyJump: true, attributionControl: true }).setView([20, 0], 2);
  if (cfg.tiles) L.tileLayer(cfg.tiles, { maxZoom: 19, attribution: "your tile server" }).addTo(map);
  let countries = null;
  const candidateFill = { committed: "#b9d7a8", pending: "#ffd59a", constraint: "#f3c9a0" };
  let candidates = {};
  const styleCountry = (f) => {
    const kind = candidates[f.properties.iso_a2];
    return { color: "#8a8f80", weight: kind ? 1.5 : 0.8, fillColor: candidateFill[kind] || "#eef0e8", fillOpacity: cfg.tiles ? (kind ? 0.4 : 0) : 1 };
  };
  fetch("/static/vendor/countries-110m.geojson").then((r) => r.json()).then((fc) => {
    countries = L.geoJSON(fc, {
      style: styleCountry,
      onEachFeature: (f, layer) => layer.on("click", () => pickCountry(f.properties)),
    }).addTo(map);
    countries.bringToBack();
    map.attributionControl.addAttribution("Natural Earth (public domain)");
  });
  const colours = { evidence: "#1f6fb4", osm: "#2a9d3a", chain: "#7a3db8", constraint: "#e08a00" };
  fetch(`/api/sessions/${cfg.id}`).then((r) => r.json()).then((s) => {
    candidates = s.candidates || {};
    if (countries) countries.setStyle(styleCountry);
    const layer = L.geoJSON(s.map, {
      style: (f) => f.properties.role === "answer_radius" ? { color: "#d1342f", weight: 2, fillOpacity: 0.08 }
        : { color: colours[f.properties.role] || "#333", dashArray: "6 4", weight: 2, fillOpacity: 0.05 },
      pointToLayer: (f, ll) => f.properties.role === "answer"
        ? L.circleMarker(ll, { radius: 8, color: "#d1342f", fillOpacity: 0.9 })
        : L.circleMarker(ll, { radius: 5, color: colours[f.properties.role] || "#333", fillOpacity: 0.8 }),
      onEachFeature: (f, l) => {
        const p = f.properties;
        let html = `<b>${escape(p.label || p.role)}</b>`;
        if (p.id) html += `<br>evidence ${escape(p.id)} (${escape(p.tool || "")})`;
        if (p.osm_id) html += `<br><a target="_blank" rel="noreferrer" href="https://www.openstreetmap.org/${({n: "node", w: "way", r: "relation"})[p.osm_id[0]]}/${p.osm_id.slice(1)}">${escape(p.osm_id)} on OpenStreetMap</a>`;
        if (p.tags) html += "<table class='tags'>" + Object.entries(p.tags).map(([k, v]) => `<tr><td>${escape(k)}</td><td>${escape(v)}</td></tr>`).join("") + "</table>";
        if (p.text) html += `<br>${escape(p.text)}`;
        if (p.radius_km) html += `<br>radius ${p.radius_km} km`;
        l.bindPopup(html);
      },
    }).addTo(map);
    if (layer.getLayers().length) map.fitBounds(layer.getBounds().pad(0.3), { maxZoom: 14 });
    if (s.osm_db) {
      fetch(`/sessions/${cfg.id}/osm.geojson`).then((r) => r.json()).then((fc) => {
        const style = { road: { color: "#777", weight: 1 }, building: { color: "#b08060", weight: 1 }, water: { color: "#4a90c0", weight: 1 }, river: { color: "#4a90c0", weight: 2 } };
        L.geoJSON(fc, { style: (f) => style[f.properties.layer] || {}, pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 2 }) }).addTo(map);
      });
    }
  });

  // -- drawing constraints --------------------------------------------------------------------------
  let mode = null, first = null, temp = null;
  const help = (t) => { $("draw-help").textContent = t; };
  $("draw-bbox").onclick = () => { mode = "bbox"; first = null; help("click two opposite corners"); };
  $("draw-circle").onclick = () => { mode = "circle"; first = null; help("click the centre, then a point on the edge"); };
  $("pick-country").onclick = () => { mode = "country"; help("click a country"); };
  map.on("click", (e) => {
    if (mode !== "bbox" && mode !== "circle") return;
    if (!first) { first = e.latlng; help("now the second point"); return; }
    if (temp) map.removeLayer(temp);
    if (mode === "bbox") {
      const s = Math.min(first.lat, e.latlng.lat), n = Math.max(first.lat, e.latlng.lat);
      const w = Math.min(first.lng, e.latlng.lng), ea = Math.max(first.lng, e.latlng.lng);
      temp = L.rectangle([[s, w], [n, ea]], { color: "#e08a00" }).addTo(map);
      $("ckind").value = "bbox"; $("c-bbox").value = [s, w, n, ea].map((x) => x.toFixed(4)).join(",");
    } else {
      const km = first.distanceTo(e.latlng) / 1000;
      temp = L.circle(first, { radius: km * 1000, color: "#e08a00" }).addTo(map);
      $("ckind").value = "circle"; $("c-circle").value = `${first.lat.toFixed(4)},${first.lng.toFixed(4)},${km.toFixed(2)}`;
    }
    mode = null; first = null; edited = true; help("press Add constraint to apply it");
  });
  function pickCountry(props) {
    if (mode !== "country" || !props.iso_a2) return;
    $("ckind").value = "country"; $("c-country").value = props.iso_a2;
    mode = null; edited = true; help(`${props.name} (${props.iso_a2}): choose "in country" or "not in country", then Add constraint`);
  }

  // -- crop selection on the photo (OCR on a region) ------------------------------------------------
  const svg = $("overlay"), sel = $("selection");
  const vb = svg.viewBox.baseVal;
  let start = null;
  const pt = (ev) => { const r = svg.getBoundingClientRect(); return [(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height]; };
  svg.addEventListener("mousedown", (ev) => { start = pt(ev); ev.preventDefault(); });
  svg.addEventListener("mousemove", (ev) => {
    if (!start) return;
    const [x, y] = pt(ev);
    sel.setAttribute("x", Math.min(start[0], x) * vb.width); sel.setAttribute("y", Math.min(start[1], y) * vb.height);
    sel.setAttribute("width", Math.abs(x - start[0]) * vb.width); sel.setAttribute("height", Math.abs(y - start[1]) * vb.height);
  });
  svg.addEventListener("mouseup", (ev) => {
    if (!start) return;
    const [x, y] = pt(ev);
    const box = [Math.min(start[0], x), Math.min(start[1], y), Math.max(start[0], x), Math.max(start[1], y)].map((v) => +Math.max(0, Math.min(1, v)).toFixed(3));
    start = null;
    if (box[2] - box[0] > 0.01 && box[3] - box[1] > 0.01) {
      $("ocr-crop").dataset.args = JSON.stringify({ region: box });
      $("tool-name").value = "ocr"; $("tool-args").value = JSON.stringify({ region: box }); edited = true;
    }
  });
  // OSM presets: a feature of the chosen kind around the answer (or the map's centre)
  fetch("/api/osm/presets").then((r) => r.json()).then((presets) => {
    const sel = $("osm-preset");
    for (const name of Object.keys(presets)) { const o = document.createElement("option"); o.value = o.textContent = name; sel.appendChild(o); }
    sel.addEventListener("change", () => {
      if (!sel.value) return;
      const c = map.getCenter();
      $("tool-name").value = "osm_search";
      $("tool-args").value = JSON.stringify({ features: [presets[sel.value]], scope: { kind: "around", lat: +c.lat.toFixed(5), lon: +c.lng.toFixed(5), radius_m: 2000 }, limit: 50 });
    });
  });
  for (const a of document.querySelectorAll(".examples a")) {
    a.addEventListener("click", (ev) => { ev.preventDefault(); $("tool-name").value = a.dataset.tool; $("tool-args").value = a.dataset.args; edited = true; });
  }

  // -- a case of several media: frames strip, video players, tools on one frame -----------------------
  if (cfg.media && cfg.media.length) {
    const photo = $("photo");
    const frames = [...document.querySelectorAll("#case .frame")];
    const size = (id) => {
      for (const m of cfg.media) {
        if (m.kind === "photo" && m.id === id) return [m.width, m.height];
        if (m.kind === "video" && m.frames.some((f) => f.id === id)) return [m.width, m.height];
      }
      return [photo.width, photo.height];
    };
    const select = (id) => {
      $("selected-frame").textContent = id;
      for (const b of frames) b.classList.toggle("selected", b.dataset.id === id);
      photo.src = `/sessions/${cfg.id}/media/${encodeURIComponent(id)}.jpg`;
      const [w, h] = size(id);
      svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
      for (const p of svg.querySelectorAll("polygon.ocr")) p.remove();
      for (const b of cfg.boxes.filter((x) => x.media === id)) {
        const p = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
        p.setAttribute("class", "ocr"); p.setAttribute("points", b.points);
        const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
        t.textContent = `${b.id}: ${b.text} (${b.score.toFixed(2)})`; p.appendChild(t); svg.appendChild(p);
      }
      $("tool-name").value = "ocr"; $("tool-args").value = JSON.stringify({ media: [id] });
    };
    // the keyframe of a video at or before its player's time (the first when before it)
    const atTime = (mid, t) => {
      const m = cfg.media.find((x) => x.id === mid);
      let best = m.frames[0];
      for (const f of m.frames) if (f.timestamp_s <= t + 1e-3) best = f;
      return best.id;
    };
    for (const b of frames) {
      b.addEventListener("click", () => {
        if (b.dataset.t !== "") { const v = $(`player-${b.dataset.medium}`); if (v) v.currentTime = +b.dataset.t; }
        select(b.dataset.id);
      });
    }
    for (const v of document.querySelectorAll("#case video.player")) {
      v.addEventListener("pause", () => select(atTime(v.dataset.medium, v.currentTime)));
      v.addEventListener("seeked", () => { if (v.paused) select(atTime(v.dataset.medium, v.currentTime)); });
    }
    for (const b of document.querySelectorAll("#case button.play")) b.addEventListener("click", () => $(`player-${b.dataset.medium}`).play());
    for (const b of document.querySelectorAll("#case button.pause")) b.addEventListener("click", () => $(`player-${b.dataset.medium}`).pause());
    const runOn = (tool, args) => { $("tool-name").value = tool; $("tool-args").value = JSON.stringify(args); $("tool-form").requestSubmit(); };
    $("ocr-frame").addEventListener("click", () => runOn("ocr", { media: [$("selected-frame").textContent] }));
    $("zoom-frame").addEventListener("click", () => runOn("zoom", { box: [0, 0, 1, 1], medium: $("selected-frame").textContent }));
    select($("selected-frame").textContent);
  }

  function escape(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }
})();
