import { describe, expect, it } from 'vitest';

import { ansiSegments, highlight, parseLine, splitLines } from './logText';

describe('log text', () => {
  it('splits a line into time, stream and text', () => {
    expect(parseLine('2026-12-03T14:44:01.123Z stderr boom: x')).toEqual({
      time: '2026-12-03T14:44:01.123Z',
      stream: 'stderr',
      text: 'boom: x',
    });
    expect(parseLine('not a log line')).toEqual({ time: '', stream: '', text: 'not a log line' });
  });

  it('keeps a partial last line for the next chunk', () => {
    const first = splitLines('', 'a\nb');
    expect(first).toEqual({ lines: ['a'], rest: 'b' });
    expect(splitLines(first.rest, 'c\n')).toEqual({ lines: ['bc'], rest: '' });
  });

  it('turns ANSI colour codes into coloured segments', () => {
    expect(ansiSegments('ok \x1b[31;1mred\x1b[0m plain')).toEqual([
      { text: 'ok ', color: undefined, bold: undefined },
      { text: 'red', color: '#cd3131', bold: true },
      { text: ' plain', color: undefined, bold: undefined },
    ]);
  });

  it('marks every match of a search, ignoring case', () => {
    expect(highlight('Error, error', 'error')).toEqual([
      { text: 'Error', match: true },
      { text: ', ', match: false },
      { text: 'error', match: true },
    ]);
  });
});
