/** `data-testid` for props objects whose types do not list it (antd button props, onRow, ...). */
export function testId(value: string): Record<string, string> {
  return { 'data-testid': value };
}
