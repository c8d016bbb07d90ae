// Live updates: one WebSocket per page, subscribed to the page's project or model (the API's WebSocket
// protocol: docs/openapi.yaml, x-websocket). Browsers cannot set headers on a WebSocket, so the token
// goes as `?token=` on the connect URL, the way the API documents for browsers; it is never put in
// the page's own URL. A dropped connection is retried with a growing delay until the page closes it.

export function connectLive({ url, token, subscribe, onEvent, onState = () => {} }) {
  let socket = null;
  let closed = false;
  let retry = 0;
  let timer = null;

  function open() {
    if (closed) return;
    onState("connecting");
    socket = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
    socket.addEventListener("open", () => socket.send(JSON.stringify({ action: "subscribe", ...subscribe })));
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.event === "subscribed") {
        retry = 0;
        onState("subscribed");
      } else if (event.event === "error") {
        onState("refused", event.message);
      } else {
        onEvent(event);
      }
    });
    socket.addEventListener("close", () => {
      if (closed) return;
      onState("disconnected");
      retry = Math.min(retry + 1, 6);
      timer = setTimeout(open, 500 * 2 ** retry);
    });
  }

  if (!url) {
    onState("off");
  } else {
    open();
  }
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}

export const LIVE_TEXT = {
  off: "Live updates: not configured",
  connecting: "Live updates: connecting…",
  subscribed: "Live updates: on",
  disconnected: "Live updates: reconnecting…",
  refused: "Live updates: refused",
};
