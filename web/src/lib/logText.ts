// A run's log as the viewer shows it: lines split into their time, stream and text; ANSI colour
// codes (SGR) turned into styled segments; search matches found for highlighting.

export interface LogLine {
  /** "2026-12-03T14:44:01.123Z", or "" for a line not in the log format. */
  time: string;
  /** stdout | stderr | log | system, or "". */
  stream: string;
  text: string;
}

const LINE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (stdout|stderr|log|system) (.*)$/;

export function parseLine(raw: string): LogLine {
  const match = LINE.exec(raw);
  if (!match) return { time: '', stream: '', text: raw };
  return { time: match[1] ?? '', stream: match[2] ?? '', text: match[3] ?? '' };
}

/** Splits appended text into whole lines, keeping a partial last line for the next call. */
export function splitLines(pending: string, text: string): { lines: string[]; rest: string } {
  const parts = (pending + text).split('\n');
  const rest = parts.pop() ?? '';
  return { lines: parts, rest };
}

export interface Segment {
  text: string;
  /** CSS colour, or undefined for the default. */
  color?: string;
  bold?: boolean;
}

const COLOURS = ['#000000', '#cd3131', '#0dbc79', '#e5e510', '#2472c8', '#bc3fbc', '#11a8cd', '#e5e5e5'];
const BRIGHT = ['#666666', '#f14c4c', '#23d18b', '#f5f543', '#3b8eea', '#d670d6', '#29b8db', '#ffffff'];
// ESC [ params m; other escape sequences are dropped.
// eslint-disable-next-line no-control-regex
const ESCAPE = /\x1b\[([0-9;]*)([A-Za-z])/g;

/** The text with its SGR colour codes applied (foreground colours and bold; the rest ignored). */
export function ansiSegments(text: string): Segment[] {
  const segments: Segment[] = [];
  let color: string | undefined;
  let bold = false;
  let last = 0;
  const push = (piece: string) => {
    if (piece) segments.push({ text: piece, color, bold: bold || undefined });
  };
  for (const match of text.matchAll(ESCAPE)) {
    push(text.slice(last, match.index));
    last = (match.index ?? 0) + match[0].length;
    if (match[2] !== 'm') continue;
    for (const code of (match[1] || '0').split(';').map(Number)) {
      if (code === 0) [color, bold] = [undefined, false];
      else if (code === 1) bold = true;
      else if (code === 22) bold = false;
      else if (code >= 30 && code <= 37) color = COLOURS[code - 30];
      else if (code >= 90 && code <= 97) color = BRIGHT[code - 90];
      else if (code === 39) color = undefined;
    }
  }
  push(text.slice(last));
  return segments;
}

/** `text` cut into pieces, every case-insensitive occurrence of `query` marked. */
export function highlight(text: string, query: string): { text: string; match: boolean }[] {
  if (!query) return [{ text, match: false }];
  const pieces: { text: string; match: boolean }[] = [];
  const lower = text.toLowerCase();
  const needle = query.toLowerCase();
  let from = 0;
  for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, from)) {
    if (at > from) pieces.push({ text: text.slice(from, at), match: false });
    pieces.push({ text: text.slice(at, at + needle.length), match: true });
    from = at + needle.length;
  }
  if (from < text.length) pieces.push({ text: text.slice(from), match: false });
  return pieces;
}
