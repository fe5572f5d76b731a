// Example configs offered by "查看配置示例", taken from the user guide (实时进度查看 → 详细配置示例,
// 任务编排 → 执行模式详解). The workflow task_ids are the guide's placeholders: replace them with
// real task ids.

import type { MessageKey } from '../i18n';

export interface ConfigExample {
  key: string;
  label: MessageKey;
  text: string;
}

const exampleTask = (duration: number, successRate: string, message: string, steps: number) => `{
  "duration_seconds": ${duration},
  "success_rate": ${successRate},
  "message": "${message}",
  "steps": ${steps}
}`;

const workflow = (type: string, nodes: Array<[number, string, number[]]>, onFailure: string) => `{
  "workflow_type": "${type}",
  "tasks": [
${nodes
  .map(
    ([id, name, deps]) =>
      `    {\n      "task_id": ${id},\n      "name": "${name}",\n      "dependencies": [${deps.join(', ')}]\n    }`,
  )
  .join(',\n')}
  ],
  "on_failure": "${onFailure}"
}`;

export const CONFIG_EXAMPLES: ConfigExample[] = [
  { key: 'example-5', label: 'example_5', text: exampleTask(5, '1.0', '快速任务完成', 5) },
  { key: 'example-20', label: 'example_20', text: exampleTask(20, '1.0', '中等任务完成', 20) },
  { key: 'example-30', label: 'example_30', text: exampleTask(30, '1.0', '长时间任务执行完成', 30) },
  { key: 'example-60', label: 'example_60', text: exampleTask(60, '0.95', '长时间任务完成', 60) },
  {
    key: 'command',
    label: 'example_command',
    text: `{
  "command": "python -c \\"print('hello')\\"",
  "timeout_seconds": 60
}`,
  },
  {
    key: 'serial',
    label: 'example_serial',
    text: workflow(
      'serial',
      [
        [1, '步骤1：数据清洗', []],
        [2, '步骤2：数据转换', [1]],
        [3, '步骤3：数据入库', [2]],
      ],
      'stop',
    ),
  },
  {
    key: 'parallel',
    label: 'example_parallel',
    text: workflow(
      'parallel',
      [
        [1, '同步数据源A', []],
        [2, '同步数据源B', []],
        [3, '同步数据源C', []],
      ],
      'continue',
    ),
  },
  {
    key: 'mixed',
    label: 'example_mixed',
    text: workflow(
      'parallel',
      [
        [1, '任务1', []],
        [2, '任务2', []],
        [3, '任务3', [1, 2]],
        [4, '任务4', [3]],
      ],
      'stop',
    ),
  },
];
