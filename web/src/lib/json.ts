// JSON config parsing with the error position (line/column), for the config editor.

import type { JsonObject } from '../api/types';

export type ParseResult =
  | { ok: true; value: JsonObject | null }
  | { ok: false; kind: 'syntax'; line: number; column: number; reason: string }
  | { ok: false; kind: 'not_object' };

/** Line and column (1-based) of a character offset. */
export function positionOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}

/** Offset of a JSON.parse error: V8 says "at position N" (newer ones add "(line L column C)"). */
function errorOffset(message: string, text: string): number {
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(message);
  if (lineColumn) {
    const lines = text.split('\n');
    const line = Number(lineColumn[1]);
    const column = Number(lineColumn[2]);
    return lines.slice(0, line - 1).reduce((sum, l) => sum + l.length + 1, 0) + column - 1;
  }
  const position = /position (\d+)/.exec(message);
  if (position) return Number(position[1]);
  // "Unexpected end of JSON input" and similar: the error is at the end.
  return text.length;
}

/** Parses the config editor text: empty → null (no config); anything but an object is an error. */
export function parseConfig(text: string): ParseResult {
  if (!text.trim()) return { ok: true, value: null };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const reason = message.replace(/\s*\(line \d+ column \d+\)/, '').replace(/ in JSON at position \d+/, '');
    return { ok: false, kind: 'syntax', ...positionOf(text, errorOffset(message, text)), reason };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, kind: 'not_object' };
  }
  return { ok: true, value: value as JsonObject };
}

/** JSON with object keys sorted, to compare configs whose key order the server does not keep. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
