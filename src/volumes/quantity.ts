// The parser lives in src/quantity/quantity.ts; this re-export remains only until
// src/pods/lifecycle.ts and src/pods/states/pulling.ts import from there.
export { bytesOf, millisOf } from "../quantity/quantity.ts";
