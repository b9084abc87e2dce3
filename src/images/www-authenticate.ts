// Parsing of `WWW-Authenticate` challenges (RFC 7235) as registries send them:
// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull"`
// or `Basic realm="Registry Realm"`.

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** All challenges in a header value, scheme lower-cased, parameter names lower-cased. */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  if (!header) return [];
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipSpace = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  while (i < s.length) {
    skipSpace();
    while (s[i] === ",") {
      i++;
      skipSpace();
    }
    const scheme = token();
    if (!scheme) {
      i++;
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    // Parameters: name=value or name="quoted", separated by commas, until the next scheme.
    for (;;) {
      skipSpace();
      const save = i;
      const name = token();
      skipSpace();
      if (!name || s[i] !== "=") {
        i = save;
        break;
      }
      i++;
      skipSpace();
      let value = "";
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        // Unquoted: a token, leniently anything up to a comma or space (some servers send URLs).
        const start = i;
        while (i < s.length && s[i] !== "," && s[i] !== " " && s[i] !== "\t") i++;
        value = s.slice(start, i);
      }
      challenge.params[name.toLowerCase()] = value;
      skipSpace();
      if (s[i] === ",") {
        i++;
        continue;
      }
      break;
    }
  }
  return out;
}
