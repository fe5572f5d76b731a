// A run's log: followed live over SSE (polled where EventSource is missing), with line numbers,
// ANSI colours, search with highlights, a wrap toggle, download, and a tail that auto-scrolls
// until you scroll up (scrolling back to the bottom resumes it). Without wrapping, only the lines
// on screen are rendered, so a log of 100,000 lines scrolls as easily as one of ten.

import { DownloadOutlined } from '@ant-design/icons';
import { Button, Input, Space, Switch, Tag, Typography } from 'antd';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';

import { api } from '../api/client';
import { POLL_INTERVAL_MS } from '../api/live';
import type { LogStreamEvent } from '../api/types';
import { useI18n } from '../i18n';
import { ansiSegments, highlight, parseLine, splitLines, type LogLine } from '../lib/logText';

const LINE_HEIGHT = 18;
/** Lines rendered above and below the visible ones. */
const OVERSCAN = 30;
/** How often new lines are drawn while they stream in. */
const RENDER_INTERVAL_MS = 100;
/** At most this far from the bottom still counts as "at the bottom". */
const BOTTOM_SLACK_PX = 24;
/** Wrapped lines have no fixed height: at most this many are drawn, around where the reader was. */
const WRAP_WINDOW = 2000;

interface RunLog {
  lines: LogLine[];
  raw: string[];
  complete: boolean;
}

const EMPTY_LOG: RunLog = { lines: [], raw: [], complete: false };

/** Follows the log of `executionId`: its lines so far (redrawn every 100 ms) and whether it ended. */
function useRunLog(executionId: number): RunLog {
  const [log, setLog] = useState<RunLog>(EMPTY_LOG);

  useEffect(() => {
    const lines: LogLine[] = [];
    const raw: string[] = [];
    let pending = '';
    let offset = 0;
    let stopped = false;
    let complete = false;
    let dirty = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let source: EventSource | null = null;
    const redraw = setInterval(() => {
      if (dirty) {
        dirty = false;
        setLog({ lines: lines.slice(), raw: raw.slice(), complete });
      }
    }, RENDER_INTERVAL_MS);

    const append = (text: string) => {
      const split = splitLines(pending, text);
      pending = split.rest;
      for (const line of split.lines) {
        raw.push(line);
        lines.push(parseLine(line));
      }
      dirty = dirty || split.lines.length > 0;
    };
    const finish = () => {
      if (pending) append('\n');
      stopped = complete = dirty = true;
      source?.close();
      clearTimeout(timer);
    };
    const poll = async () => {
      try {
        const page = await api.getExecutionLog(executionId, offset);
        append(page.text);
        const next = Number(page.next_offset);
        const more = next > offset;
        offset = next;
        if (!more && page.complete) return finish();
        if (!stopped) timer = setTimeout(() => void poll(), more ? 0 : POLL_INTERVAL_MS);
      } catch {
        if (!stopped) timer = setTimeout(() => void poll(), POLL_INTERVAL_MS);
      }
    };

    if (typeof EventSource !== 'undefined') {
      source = new EventSource(api.logStreamUrl(executionId));
      source.onmessage = (message: MessageEvent<string>) => {
        const event = JSON.parse(message.data) as LogStreamEvent;
        if (event.event_type === 'log') {
          append(event.text);
          offset = Number(event.next_offset);
        } else if (event.event_type === 'end') {
          finish();
        }
      };
      // A broken stream (not its in-band end): go on from where it got to by polling.
      source.onerror = () => {
        source?.close();
        source = null;
        if (!stopped) void poll();
      };
    } else {
      void poll();
    }
    return () => {
      stopped = true;
      source?.close();
      clearTimeout(timer);
      clearInterval(redraw);
    };
  }, [executionId]);

  return log;
}

function LineText({ line, query }: { line: LogLine; query: string }) {
  return (
    <>
      {ansiSegments(line.text).map((segment, i) => (
        <span key={i} style={{ color: segment.color, fontWeight: segment.bold ? 600 : undefined }}>
          {highlight(segment.text, query).map((piece, j) =>
            piece.match ? <mark key={j}>{piece.text}</mark> : piece.text,
          )}
        </span>
      ))}
    </>
  );
}

export function LogViewer({ executionId }: { executionId: number }) {
  const { t } = useI18n();
  const { lines, raw, complete } = useRunLog(executionId);
  const [query, setQuery] = useState('');
  const [wrap, setWrap] = useState(false);
  // The first line drawn while wrapping (-1: the tail).
  const [wrapStart, setWrapStart] = useState(-1);
  const [follow, setFollow] = useState(true);
  // Where the tail last put the view: a view above it that is not at the bottom was scrolled up by
  // the reader, even when that scroll's event has not arrived yet (it comes with the next frame,
  // and new lines may be drawn first; pulling the view back down then would lose the scroll).
  const tailTop = useRef<number | null>(null);
  const [scroll, setScroll] = useState({ top: 0, height: 480 });
  const box = useRef<HTMLDivElement>(null);

  const matches = useMemo(() => {
    if (!query) return 0;
    const needle = query.toLowerCase();
    return lines.reduce((count, line) => count + (line.text.toLowerCase().includes(needle) ? 1 : 0), 0);
  }, [lines, query]);

  // Live tail: keep the newest line in view unless the reader scrolled up.
  useEffect(() => {
    const element = box.current;
    if (!follow || !element) return;
    const atBottom = element.scrollHeight - element.scrollTop - element.clientHeight <= BOTTOM_SLACK_PX;
    if (tailTop.current !== null && element.scrollTop < tailTop.current && !atBottom) {
      setFollow(false);
      return;
    }
    element.scrollTop = element.scrollHeight;
    tailTop.current = element.scrollTop;
  }, [lines, follow, wrap]);

  const onScroll = useCallback(() => {
    const element = box.current;
    if (!element) return;
    setScroll({ top: element.scrollTop, height: element.clientHeight });
    const atBottom = element.scrollHeight - element.scrollTop - element.clientHeight <= BOTTOM_SLACK_PX;
    tailTop.current = atBottom ? element.scrollTop : null;
    setFollow(atBottom);
  }, []);

  const download = () => {
    const blob = new Blob([raw.join('\n') + (raw.length ? '\n' : '')], { type: 'text/plain;charset=utf-8' });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `execution-${executionId}.log`;
    link.click();
    URL.revokeObjectURL(link.href);
  };

  const toggleWrap = (on: boolean) => {
    setWrapStart(on && !follow ? Math.floor(scroll.top / LINE_HEIGHT) : -1);
    setWrap(on);
  };
  const tailStart = Math.max(0, lines.length - WRAP_WINDOW);
  const first = wrap
    ? wrapStart < 0 || follow
      ? tailStart
      : Math.min(wrapStart, tailStart)
    : Math.max(0, Math.floor(scroll.top / LINE_HEIGHT) - OVERSCAN);
  const last = wrap
    ? Math.min(lines.length, first + WRAP_WINDOW)
    : Math.min(lines.length, Math.ceil((scroll.top + scroll.height) / LINE_HEIGHT) + OVERSCAN);
  const digits = String(Math.max(lines.length, 1)).length;

  return (
    <div data-testid="log-viewer">
      <Space wrap style={{ marginBottom: 8 }}>
        <Input.Search
          allowClear
          size="small"
          placeholder={t('logSearch')}
          data-testid="log-search"
          onChange={(event) => setQuery(event.target.value)}
          style={{ width: 220 }}
        />
        {query && <span data-testid="log-matches">{t('logMatches', { n: matches })}</span>}
        <span>
          <Switch size="small" checked={wrap} onChange={toggleWrap} data-testid="log-wrap" /> {t('logWrap')}
        </span>
        <Button size="small" icon={<DownloadOutlined />} onClick={download} data-testid="log-download">
          {t('logDownload')}
        </Button>
        <Typography.Text type="secondary" data-testid="log-line-count">
          {t('logLines', { n: lines.length })}
        </Typography.Text>
        {complete ? (
          <Tag data-testid="log-complete">{t('logComplete')}</Tag>
        ) : (
          <Tag color="processing" data-testid="log-live">
            {follow ? t('logLive') : t('logPaused')}
          </Tag>
        )}
      </Space>
      <div
        ref={box}
        className={`log-view${wrap ? ' log-wrap' : ''}`}
        data-testid="log-lines"
        data-following={follow}
        onScroll={onScroll}
      >
        {wrap && last - first < lines.length && (
          <Typography.Text type="secondary" className="log-window" data-testid="log-window">
            {t('logWindow', { first: first + 1, last })}
          </Typography.Text>
        )}
        {lines.length === 0 && (
          <Typography.Text type="secondary">{complete ? t('logEmpty') : t('logWaiting')}</Typography.Text>
        )}
        <div style={wrap ? undefined : { height: lines.length * LINE_HEIGHT, position: 'relative' }}>
          {lines.slice(first, last).map((line, i) => {
            const number = first + i + 1;
            return (
              <div
                key={number}
                className={`log-line log-${line.stream || 'plain'}`}
                data-testid={`log-line-${number}`}
                style={
                  wrap
                    ? undefined
                    : { position: 'absolute', top: (number - 1) * LINE_HEIGHT, height: LINE_HEIGHT }
                }
              >
                <span className="log-number">{String(number).padStart(digits, ' ')}</span>
                <span className="log-time" title={line.time}>
                  {line.time.slice(11, 23)}
                </span>
                <span className="log-stream">{line.stream}</span>
                <span className="log-text">
                  <LineText line={line} query={query} />
                </span>
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
