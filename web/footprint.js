// The browser footprint the privacy policy names: a short hash of the user agent's family, the
// platform and a random id this browser keeps in local storage. Nothing else is fingerprinted.
const KEY = "push365.browserId";

export function browserFamily(userAgent) {
  for (const [name, pattern] of [["edge", /Edg\//], ["opera", /OPR\//], ["chrome", /Chrome\//],
                                 ["firefox", /Firefox\//], ["safari", /Safari\//]]) {
    if (pattern.test(userAgent)) return name;
  }
  return "other";
}

export function browserId(storage) {
  let id = storage.getItem(KEY);
  if (!id) {
    id = crypto.randomUUID();
    storage.setItem(KEY, id);
  }
  return id;
}

export async function footprint(nav = navigator, storage = localStorage) {
  const platform = (nav.userAgentData && nav.userAgentData.platform) || nav.platform || "unknown";
  const source = `${browserFamily(nav.userAgent)}|${platform}|${browserId(storage)}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(source));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${browserFamily(nav.userAgent)}/${hex.slice(0, 16)}`;
}
