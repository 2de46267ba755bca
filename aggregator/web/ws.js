// A WebSocket that reconnects with back-off and hands parsed JSON to a callback. The browser sends
// the session cookie with the handshake; a refused handshake looks like any other close, so after
// two in a row the page asks whether its session ended (and, if so, goes to the login page).

import {session, wsURL} from "./api.js";

export class LiveSocket {
  /**
   * @param {string} path e.g. "/ws/movement"
   * @param {(data: any, receivedMs: number) => void} onData
   * @param {(state: "open"|"closed") => void} onState
   */
  constructor(path, onData, onState) {
    this.path = path;
    this.onData = onData;
    this.onState = onState || (() => {});
    this.delayMs = 500;
    this.frames = 0;
    this.badFrames = 0;
    this.closed = false;
    this.failures = 0;   // closes in a row without ever opening
    this.ws = null;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(wsURL(this.path));
    this.ws = ws;
    ws.onopen = () => {
      this.delayMs = 500;
      this.failures = -1;
      this.onState("open");
    };
    ws.onmessage = (msg) => {
      const received = performance.now();
      this.frames += 1;
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        this.badFrames += 1;
        return;
      }
      this.onData(data, received);
    };
    ws.onclose = () => {
      this.onState("closed");
      if (this.closed) return;
      this.failures += 1;
      if (this.failures >= 2) session().catch(() => {});  // a 401 there goes to the login page
      setTimeout(() => this.connect(), this.delayMs);
      this.delayMs = Math.min(this.delayMs * 2, 10000);
    };
    ws.onerror = () => {
      // onclose follows and schedules the reconnect; nothing to do here.
    };
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
}
