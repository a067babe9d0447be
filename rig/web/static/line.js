// Line view: re-fetch the live part whenever the server says the store changed (server-sent events).
(function () {
  "use strict";
  const live = document.getElementById("live");
  const source = new EventSource("/events");
  let shown = live.dataset.version;
  source.onmessage = async (event) => {
    const version = String(JSON.parse(event.data).version);
    if (version === shown) return;  // the page already shows this state
    shown = version;
    const query = live.dataset.query;
    const answer = await fetch("/live" + (query ? "?" + query : ""));
    if (answer.ok) live.innerHTML = await answer.text();
  };
})();
