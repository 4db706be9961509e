// MoshiVis web page: image + microphone in, Moshi's voice + gate-coloured transcript out.
// Protocol (moshivis/server/protocol.py): 0x08 image, 0x00 handshake, 0x09 PCM int16 24 kHz both ways
// (Chromium cannot record Ogg/Opus without a library), 0x07 gate byte + text, 0x02 typed text, 0x05 error.
"use strict";

const RATE = 24000;
const FRAME = 1920; // 80 ms
const $ = (id) => document.getElementById(id);
const state = { image: null, ws: null, ctx: null, mic: null, node: null, playAt: 0, pending: [], connected: false,
                received: 0, sent: 0, errors: [] };
window.moshivis = { state, transcript: () => $("transcript").textContent };

function status(text) { $("status").textContent = text; }

// ------------------------------------------------------------------------------------------- image
async function setImage(blob) {
  state.image = new Uint8Array(await blob.arrayBuffer());
  const img = $("preview");
  img.src = URL.createObjectURL(blob);
  img.hidden = false;
  $("drop-hint").hidden = true;
  $("start").disabled = state.connected;
  if (state.connected) {
    send(0x08, state.image); // switch images mid-conversation
    status("Image switched.");
  } else {
    status("Ready: press Start and ask about the picture.");
  }
}
$("file").addEventListener("change", (e) => { if (e.target.files[0]) setImage(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  const f = e.dataTransfer.files[0];
  if (f && f.type.startsWith("image/")) setImage(f);
});
$("camera").addEventListener("click", async () => {
  const video = $("video");
  if (video.hidden) {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
    video.hidden = false;
    $("camera").textContent = "Take snapshot";
    return;
  }
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  video.srcObject.getTracks().forEach((t) => t.stop());
  video.hidden = true;
  $("camera").textContent = "Camera snapshot";
  canvas.toBlob((b) => setImage(b), "image/jpeg", 0.9);
});

// ------------------------------------------------------------------------------------------- socket
function send(kind, payload) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const msg = new Uint8Array(1 + payload.length);
  msg[0] = kind; msg.set(payload, 1);
  state.ws.send(msg);
}

function addText(text, gate, cls) {
  const span = document.createElement("span");
  span.textContent = text;
  span.className = cls || `g${gate}`;
  $("transcript").appendChild(span);
}

function play(int16) {
  const ctx = state.ctx;
  const buf = ctx.createBuffer(1, int16.length, RATE);
  const ch = buf.getChannelData(0);
  for (let i = 0; i < int16.length; i++) ch[i] = int16[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = buf; src.connect(ctx.destination);
  state.playAt = Math.max(state.playAt, ctx.currentTime + 0.05);
  src.start(state.playAt);
  state.playAt += buf.duration;
}

function onMessage(ev) {
  const data = new Uint8Array(ev.data);
  if (!data.length) return;
  const kind = data[0];
  if (kind === 0x00) { startMic(); return; }
  if (kind === 0x07) { addText(new TextDecoder().decode(data.subarray(2)), data[1]); return; }
  if (kind === 0x02) { addText(new TextDecoder().decode(data.subarray(1)), 0); return; }
  if (kind === 0x09) { state.received += 1; play(new Int16Array(data.buffer.slice(1))); return; }
  if (kind === 0x05) {
    const reason = new TextDecoder().decode(data.subarray(1));
    state.errors.push(reason); status("Server: " + reason);
  }
}

async function start() {
  if (!state.image) return;
  state.ctx = new AudioContext({ sampleRate: RATE });
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/chat${location.search}`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => { status("Encoding the image..."); send(0x08, state.image); };
  ws.onmessage = onMessage;
  ws.onclose = (e) => { stop(); if (e.reason) status("Closed: " + e.reason); };
  $("start").disabled = true; $("stop").disabled = false;
}

async function startMic() {
  state.connected = true;
  status("Listening: ask your question.");
  $("question").disabled = false; $("send").disabled = false;
  state.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: false,
                                                                    autoGainControl: false } });
  const source = state.ctx.createMediaStreamSource(state.mic);
  // ScriptProcessor: no extra worklet file, and the AudioContext already resamples the mic to 24 kHz.
  const node = state.ctx.createScriptProcessor(2048, 1, 1);
  let acc = new Float32Array(0);
  node.onaudioprocess = (e) => {
    const input = e.inputBuffer.getChannelData(0);
    const joined = new Float32Array(acc.length + input.length);
    joined.set(acc); joined.set(input, acc.length);
    let off = 0;
    while (joined.length - off >= FRAME) {
      const pcm = new Int16Array(FRAME);
      for (let i = 0; i < FRAME; i++) pcm[i] = Math.max(-1, Math.min(1, joined[off + i])) * 32767;
      send(0x09, new Uint8Array(pcm.buffer));
      state.sent += 1;
      off += FRAME;
    }
    acc = joined.slice(off);
  };
  source.connect(node);
  node.connect(state.ctx.destination); // a ScriptProcessor only runs when connected; it outputs silence
  state.node = node;
}

function stop() {
  state.connected = false;
  if (state.node) { state.node.disconnect(); state.node = null; }
  if (state.mic) { state.mic.getTracks().forEach((t) => t.stop()); state.mic = null; }
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.close();
  $("start").disabled = !state.image; $("stop").disabled = true;
  $("question").disabled = true; $("send").disabled = true;
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", () => { stop(); status("Stopped."); });
$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("question").value.trim();
  if (!q) return;
  addText(q + " ", 0, "user");
  send(0x02, new TextEncoder().encode(q));
  $("question").value = "";
});
