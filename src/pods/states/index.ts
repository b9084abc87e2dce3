// Every state and the transition table, derived from each state's own declaration.
import { failed } from "./failed.ts";
import { initializing } from "./initializing.ts";
import { pending } from "./pending.ts";
import { preparing } from "./preparing.ts";
import { pulling } from "./pulling.ts";
import { running } from "./running.ts";
import type { PodState, StateName } from "./state.ts";
import { succeeded } from "./succeeded.ts";
import { terminated } from "./terminated.ts";
import { terminating } from "./terminating.ts";

export const STATES: { readonly [N in StateName]: PodState<N> } = {
  Pending: pending,
  Pulling: pulling,
  Preparing: preparing,
  Initializing: initializing,
  Running: running,
  Succeeded: succeeded,
  Failed: failed,
  Terminating: terminating,
  Terminated: terminated,
};

export const TRANSITIONS: { readonly [N in StateName]: readonly StateName[] } = Object.fromEntries(
  Object.entries(STATES).map(([name, state]) => [name, state.next]),
) as { readonly [N in StateName]: readonly StateName[] };

export type { PodState, StateContext, StateName } from "./state.ts";
export { STATE_NAMES } from "./state.ts";
