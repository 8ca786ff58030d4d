// Rekam heart-monitoring dashboard: live tiles, scrolling ECG strip, alert list with acknowledge.
//
// Live data comes from GET /api/v1/monitor/events (Server-Sent Events); each message is one
// event's to_json() dictionary ("heart_rate", "alert", "samples"). Events name a device; the
// tiles (server-rendered, refreshed from GET /api/v1/monitor/tiles) map devices to patients.
//
// ECG paper: 25 mm/s and 10 mm/mV, small squares 1 mm, large squares 5 mm. Millimetres are CSS
// millimetres: CSS fixes 1 in = 96 CSS px = 25.4 mm, so 1 mm = 96 / 25.4 = 3.78 CSS px. The
// canvas is sized in CSS px and its backing store multiplied by devicePixelRatio, so the grid stays
// sharp; on a screen whose CSS px is not 1/96 in, distances stay in proportion (speed and gain are
// exact relative to the printed grid). Samples are microvolts (1 mV = 1000 µV).
"use strict";

(function () {
  const root = document.getElementById("monitor");
  if (!root) {
    return;
  }
  const TEXT = JSON.parse(document.getElementById("monitor-text").textContent);
  const PX_PER_MM = 96 / 25.4;
  const MM_PER_S = 25;
  const MM_PER_MV = 10;
  const STRIP_HEIGHT_MM = 40;
  const canAcknowledge = root.dataset.canAcknowledge === "1";
  const devicePatient = new Map();
  const alertStrips = new Map(); // episode id -> strip of the raised phase
  let source = null;
  let stripDevice = null;
  let lastTilesRefresh = 0;

  function t(key, values) {
    let text = TEXT[key] || key;
    if (values) {
      for (const [name, value] of Object.entries(values)) {
        text = text.split("{" + name + "}").join(String(value));
      }
    }
    return text;
  }

  // Times: dd-mm-yyyy HH:MM:SS in the clinic's zone, like the server-rendered rows.
  const timeParts = new Intl.DateTimeFormat("en-GB", {
    timeZone: root.dataset.timezone || "UTC",
    day: "2-digit", month: "2-digit", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });

  function formatTime(ms) {
    const p = {};
    for (const part of timeParts.formatToParts(new Date(ms))) {
      p[part.type] = part.value;
    }
    return `${p.day}-${p.month}-${p.year} ${p.hour}:${p.minute}:${p.second}`;
  }

  function key(value) {
    return String(value).replace(/ /g, "_");
  }

  // Tiles ---------------------------------------------------------------------------------------

  function learnTile(tile) {
    for (const device of (tile.dataset.devices || "").split(" ")) {
      if (device) {
        devicePatient.set(device, tile.dataset.patientId);
      }
    }
  }

  function field(container, name) {
    return container.querySelector(`[data-field="${name}"]`);
  }

  function tileOf(deviceId) {
    const patientId = devicePatient.get(deviceId);
    if (!patientId) {
      refreshTiles();
      return null;
    }
    return document.getElementById("tile-" + patientId);
  }

  function showReading(message) {
    const tile = tileOf(message.device_id);
    if (!tile) {
      return;
    }
    const bpm = message.bpm === null ? t("monitor.no_reading") : String(Math.round(message.bpm));
    field(tile, "bpm").textContent = bpm;
    let rhythm = t("monitor.rhythm_" + key(message.rhythm));
    if (message.irregular) {
      rhythm += " · " + t("monitor.irregular");
    }
    field(tile, "rhythm").textContent = rhythm;
    field(tile, "quality").textContent = t("monitor.quality_" + key(message.quality));
    tile.dataset.readingMs = String(message.time_ms);
  }

  function buildTile(data) {
    const tile = document.createElement("article");
    tile.className = "monitor-tile";
    tile.id = "tile-" + data.patient_id;
    tile.dataset.patientId = data.patient_id;
    tile.dataset.devices = data.devices.map((d) => d.id).join(" ");
    const heading = document.createElement("h3");
    heading.textContent = data.patient_name + " ";
    const mrn = document.createElement("span");
    mrn.className = "hint";
    mrn.textContent = data.medical_record_number;
    heading.append(mrn);
    const hr = document.createElement("p");
    hr.className = "tile-hr";
    const value = document.createElement("span");
    value.className = "hr-value";
    value.dataset.field = "bpm";
    value.textContent = "—";
    const unit = document.createElement("span");
    unit.className = "unit";
    unit.textContent = t("monitor.bpm");
    hr.append(value, " ", unit);
    const facts = document.createElement("dl");
    facts.className = "tile-facts";
    for (const [label, name] of [["monitor.rhythm", "rhythm"], ["monitor.quality", "quality"],
      ["monitor.last_alert", "last-alert"]]) {
      const dt = document.createElement("dt");
      dt.textContent = t(label);
      const dd = document.createElement("dd");
      dd.dataset.field = name;
      dd.textContent = "—";
      facts.append(dt, dd);
    }
    const devices = document.createElement("p");
    devices.className = "tile-devices hint";
    for (const d of data.devices) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "show-strip";
      button.dataset.device = d.id;
      button.dataset.patientName = data.patient_name;
      button.textContent = t("monitor.show_strip") + ": " + d.label;
      devices.append(button, " ");
    }
    tile.append(heading, hr, facts, devices);
    return tile;
  }

  async function refreshTiles() {
    const now = Date.now();
    if (now - lastTilesRefresh < 5000) {
      return;
    }
    lastTilesRefresh = now;
    const response = await fetch(root.dataset.tiles, { credentials: "same-origin" });
    if (!response.ok) {
      return;
    }
    const data = await response.json();
    const container = document.getElementById("tiles");
    for (const tile of data.tiles) {
      if (!document.getElementById("tile-" + tile.patient_id)) {
        container.append(buildTile(tile));
      }
    }
    for (const [device, patient] of Object.entries(data.device_patients)) {
      devicePatient.set(device, patient);
    }
    document.getElementById("tiles-empty").hidden = data.tiles.length > 0;
  }

  // Alerts --------------------------------------------------------------------------------------

  function patientName(deviceId) {
    const tile = tileOf(deviceId);
    if (!tile) {
      return "";
    }
    return tile.querySelector("h3").textContent.trim();
  }

  function ackButton(episodeId) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ack";
    button.dataset.alert = episodeId;
    button.textContent = t("monitor.acknowledge");
    return button;
  }

  function alertRow(message) {
    const row = document.createElement("tr");
    row.id = "alert-" + message.episode_id;
    row.dataset.episodeId = message.episode_id;
    row.dataset.device = message.device_id;
    row.className = "unacknowledged";
    const cells = {};
    for (const name of ["patient", "kind", "bpm", "started", "status", "acknowledged", "ecg"]) {
      const cell = document.createElement("td");
      cell.dataset.field = name;
      cells[name] = cell;
      row.append(cell);
    }
    cells.patient.textContent = patientName(message.device_id);
    const kind = document.createElement("strong");
    kind.className = "alert-text";
    kind.textContent = t("monitor.kind_" + message.kind);
    cells.kind.append(kind);
    cells.started.textContent = formatTime(message.started_ms);
    if (canAcknowledge) {
      cells.acknowledged.append(ackButton(message.episode_id));
    } else {
      cells.acknowledged.textContent = "—";
    }
    const ecg = document.createElement("button");
    ecg.type = "button";
    ecg.className = "show-alert-strip";
    ecg.dataset.episode = message.episode_id;
    ecg.textContent = t("monitor.show_ecg");
    cells.ecg.append(ecg);
    return row;
  }

  function showAlert(message) {
    if (message.strip) {
      alertStrips.set(message.episode_id, message.strip);
    }
    const body = document.querySelector("#alert-list tbody");
    let row = document.getElementById("alert-" + message.episode_id);
    if (!row) {
      row = alertRow(message);
      body.prepend(row);
      document.getElementById("alerts-empty").hidden = true;
    }
    field(row, "bpm").textContent = `${Math.round(message.bpm)} ${t("monitor.bpm")}`;
    const ended = message.phase === "ended";
    field(row, "status").textContent = t(ended ? "monitor.status_ended" : "monitor.status_open");
    const tile = tileOf(message.device_id);
    if (tile) {
      field(tile, "last-alert").textContent = `${t("monitor.kind_" + message.kind)} · ` +
        `${Math.round(message.bpm)} ${t("monitor.bpm")} · ${formatTime(message.started_ms)}`;
      if (!ended && row.classList.contains("unacknowledged")) {
        tile.classList.add("alerting");
      }
    }
  }

  // Acknowledged here or on another dashboard: the row shows who, the tile stops alerting.
  function markAcknowledged(row, by, atMs, deviceId) {
    const cell = field(row, "acknowledged") || row.cells[5];
    cell.textContent = `${by} · ${formatTime(atMs)}`;
    row.classList.remove("unacknowledged");
    const tile = tileOf(deviceId);
    if (tile) {
      tile.classList.remove("alerting");
    }
  }

  function showAcknowledged(message) {
    const row = document.getElementById("alert-" + message.episode_id);
    if (row && row.classList.contains("unacknowledged")) {
      markAcknowledged(row, message.acknowledged_by, message.acknowledged_ms, message.device_id);
    }
  }

  async function acknowledge(alertId, row) {
    const cell = field(row, "acknowledged") || row.cells[5];
    const response = await fetch(`/api/v1/monitor/alerts/${encodeURIComponent(alertId)}/acknowledge`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": root.dataset.csrf },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const reason = body && body.error ? body.error.message : String(response.status);
      const message = document.createElement("p");
      message.className = "message error";
      message.setAttribute("role", "alert");
      message.textContent = t("monitor.acknowledge_failed", { reason: reason });
      cell.append(message);
      return;
    }
    markAcknowledged(row, body.acknowledged_by, Date.parse(body.acknowledged_at), body.device_id);
  }

  // The ECG strip -------------------------------------------------------------------------------

  // Size a canvas to its frame's width and STRIP_HEIGHT_MM; returns the paper geometry.
  function paper(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const widthCss = Math.max(200, Math.floor(canvas.parentElement.clientWidth));
    const heightCss = Math.round(STRIP_HEIGHT_MM * PX_PER_MM);
    canvas.style.width = widthCss + "px";
    canvas.style.height = heightCss + "px";
    canvas.width = Math.round(widthCss * ratio);
    canvas.height = Math.round(heightCss * ratio);
    const scale = PX_PER_MM * ratio; // backing-store px per mm
    canvas.dataset.pxPerMm = String(PX_PER_MM);
    canvas.dataset.mmPerS = String(MM_PER_S);
    canvas.dataset.mmPerMv = String(MM_PER_MV);
    canvas.dataset.seconds = (widthCss / PX_PER_MM / MM_PER_S).toFixed(2);
    return { ctx: canvas.getContext("2d"), width: canvas.width, height: canvas.height, scale };
  }

  function drawGrid(p) {
    const ctx = p.ctx;
    ctx.fillStyle = "#fffafa";
    ctx.fillRect(0, 0, p.width, p.height);
    const columns = Math.ceil(p.width / p.scale);
    const rows = Math.ceil(p.height / p.scale);
    for (const major of [false, true]) {
      ctx.beginPath();
      ctx.strokeStyle = major ? "#e39a9a" : "#f6d3d3";
      ctx.lineWidth = major ? Math.max(1, p.scale / 4) : 1;
      for (let i = 0; i <= columns; i += 1) {
        if ((i % 5 === 0) === major) {
          const x = Math.round(i * p.scale) + 0.5;
          ctx.moveTo(x, 0);
          ctx.lineTo(x, p.height);
        }
      }
      for (let j = 0; j <= rows; j += 1) {
        if ((j % 5 === 0) === major) {
          const y = Math.round(p.height - j * p.scale) - 0.5;
          ctx.moveTo(0, y);
          ctx.lineTo(p.width, y);
        }
      }
      ctx.stroke();
    }
  }

  // Draw samples (µV) with the newest at the right edge (or the first at the left: fromLeft).
  function drawTrace(p, samples, rate, fromLeft) {
    const ctx = p.ctx;
    const pxPerSample = (MM_PER_S * p.scale) / rate;
    const pxPerMicrovolt = (MM_PER_MV * p.scale) / 1000;
    const baseline = Math.round(p.height / 2);
    const fit = Math.min(samples.length, Math.floor(p.width / pxPerSample) + 1);
    const first = fromLeft ? 0 : samples.length - fit;
    const offset = fromLeft ? 0 : p.width - (fit - 1) * pxPerSample;
    ctx.beginPath();
    ctx.strokeStyle = "#111";
    ctx.lineWidth = Math.max(1.5, p.scale / 3);
    for (let i = 0; i < fit; i += 1) {
      const x = offset + i * pxPerSample;
      const y = baseline - samples[first + i] * pxPerMicrovolt;
      if (i === 0) {
        ctx.moveTo(x, y);
      } else {
        ctx.lineTo(x, y);
      }
    }
    ctx.stroke();
    return fit;
  }

  // The live strip: a window of the selected device's latest samples.
  const live = { samples: [], rate: 0, pending: false };

  function pushSamples(message) {
    if (live.rate !== message.rate_hz) {
      live.samples = [];
      live.rate = message.rate_hz;
    }
    for (const v of message.samples_uv) {
      live.samples.push(v);
    }
    const keep = Math.ceil(live.rate * 30);
    if (live.samples.length > keep) {
      live.samples.splice(0, live.samples.length - keep);
    }
    if (!live.pending) {
      live.pending = true;
      window.requestAnimationFrame(drawLive);
    }
  }

  function drawLive() {
    live.pending = false;
    const canvas = document.getElementById("ecg-strip");
    const p = paper(canvas);
    drawGrid(p);
    if (live.samples.length > 1) {
      canvas.dataset.samplesDrawn = String(drawTrace(p, live.samples, live.rate, false));
    }
  }

  function chooseStrip(button) {
    stripDevice = button.dataset.device;
    live.samples = [];
    live.rate = 0;
    const canvas = document.getElementById("ecg-strip");
    canvas.dataset.device = stripDevice;
    document.getElementById("strip-patient").textContent = button.dataset.patientName || "";
    drawLive();
    connect();
  }

  function drawAlertStrip(strip, caption) {
    const canvas = document.getElementById("alert-strip");
    canvas.hidden = false;
    const p = paper(canvas);
    drawGrid(p);
    canvas.dataset.samplesDrawn = String(drawTrace(p, strip.samples_uv, strip.rate_hz, true));
    const text = document.getElementById("alert-strip-caption");
    text.textContent = caption;
    text.hidden = false;
  }

  async function showAlertStrip(button) {
    const row = button.closest("tr");
    const kind = field(row, "kind").textContent.trim();
    const bpm = field(row, "bpm").textContent.trim();
    const patient = row.cells[0].textContent.trim();
    const caption = t("monitor.alert_strip_caption", { kind: kind, bpm: bpm, patient: patient });
    if (button.dataset.episode && alertStrips.has(button.dataset.episode)) {
      drawAlertStrip(alertStrips.get(button.dataset.episode), caption);
      return;
    }
    const id = button.dataset.alert || button.dataset.episode;
    const response = await fetch(`/api/v1/monitor/alerts/${encodeURIComponent(id)}`, {
      credentials: "same-origin",
    });
    if (response.ok) {
      const alert = await response.json();
      if (alert.strip) {
        drawAlertStrip(alert.strip, caption);
      }
    }
  }

  // Live events ---------------------------------------------------------------------------------

  function status(text, state) {
    const line = document.getElementById("live-status");
    line.textContent = text;
    line.dataset.state = state;
  }

  function handle(message) {
    if (message.type === "heart_rate") {
      showReading(message);
    } else if (message.type === "alert") {
      showAlert(message);
    } else if (message.type === "alert_acknowledged") {
      showAcknowledged(message);
    } else if (message.type === "samples" && message.device_id === stripDevice) {
      pushSamples(message);
    }
  }

  function connect() {
    if (source) {
      source.close();
    }
    let url = root.dataset.events;
    if (stripDevice) {
      url += "?devices=" + encodeURIComponent(stripDevice);
    }
    source = new EventSource(url);
    source.onopen = () => status(t("monitor.live_on"), "live");
    source.onerror = () => status(t("monitor.live_off"), "off");
    source.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return; // not an event this page knows
      }
      if (message && typeof message === "object") {
        handle(message);
      }
    };
  }

  // Wiring --------------------------------------------------------------------------------------

  document.querySelectorAll(".monitor-tile").forEach(learnTile);
  root.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) {
      return;
    }
    if (target.classList.contains("show-strip")) {
      chooseStrip(target);
    } else if (target.classList.contains("show-alert-strip")) {
      showAlertStrip(target);
    } else if (target.classList.contains("ack") && !target.form) {
      acknowledge(target.dataset.alert, target.closest("tr"));
    }
  });
  root.addEventListener("submit", (event) => {
    const form = event.target.closest("form.ack-form");
    if (form) {
      event.preventDefault();
      acknowledge(form.dataset.alert, form.closest("tr"));
    }
  });
  drawLive();
  connect();
  root.dataset.ready = "1";
})();
