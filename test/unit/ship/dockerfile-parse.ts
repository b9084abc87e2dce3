// A small Dockerfile reader for the tests (no Docker engine here): parser directives and comments
// dropped, continuation lines joined, instructions grouped by build stage. Enough to check what
// the image is made of, not a full implementation of the format (no heredocs, no escape directive).
import { readFileSync } from "node:fs";

export interface Instruction {
  keyword: string;
  /** Everything after the keyword, with continuations joined by a space. */
  args: string;
  /** Flags such as `--from=build` (COPY) or `--interval=30s` (HEALTHCHECK), by name. */
  flags: Record<string, string>;
  /** What follows the flags. */
  rest: string;
  line: number;
}

export interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

function splitFlags(args: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const match = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest);
    if (!match) break;
    flags[match[1] as string] = match[2] ?? "";
    rest = rest.slice(match[0].length);
  }
  return { flags, rest };
}

export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = "";
  let startLine = 0;
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) continue; // comments, parser directives included
    if (pending === "" && line.trim() === "") continue;
    if (pending === "") startLine = i + 1;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const whole = (pending + line.trim()).trim();
    pending = "";
    const space = whole.search(/\s/);
    const keyword = (space < 0 ? whole : whole.slice(0, space)).toUpperCase();
    const args = space < 0 ? "" : whole.slice(space + 1).trim();
    instructions.push({ keyword, args, ...splitFlags(args), line: startLine });
  }
  if (pending !== "") throw new Error("the Dockerfile ends in a line continuation");
  return instructions;
}

export function stages(instructions: Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const [image, as, name] = instruction.rest.split(/\s+/);
      if (as !== undefined && as.toUpperCase() !== "AS") {
        throw new Error(`line ${instruction.line}: cannot read FROM ${instruction.args}`);
      }
      out.push({ image: image as string, name, instructions: [] });
    } else {
      const current = out.at(-1);
      if (!current) throw new Error(`line ${instruction.line}: ${instruction.keyword} before FROM`);
      current.instructions.push(instruction);
    }
  }
  return out;
}

/** The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK … CMD). */
export function execForm(text: string): string[] {
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new Error(`not an exec-form JSON array of strings: ${text}`);
  }
  return value;
}

export function readDockerfile(path: string): Stage[] {
  return stages(parseDockerfile(readFileSync(path, "utf8")));
}
