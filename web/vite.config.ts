import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// The gateway serves the built files under /admin/scheduler/ and the API on the same origin.
// `npm run dev` proxies /api to a locally running gateway (override with ZQ_API_TARGET).
const apiTarget = process.env.ZQ_API_TARGET ?? 'http://127.0.0.1:8000';

export default defineConfig({
  base: '/admin/scheduler/',
  plugins: [react()],
  server: {
    port: 5173,
    proxy: {
      '/api': { target: apiTarget, changeOrigin: false },
    },
  },
  build: {
    outDir: 'dist',
    sourcemap: false,
    // antd is one large vendor chunk (~1 MB minified, ~330 kB gzip); it is cached across releases.
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        manualChunks(id) {
          if (!id.includes('node_modules')) return undefined;
          if (/node_modules\/(react|react-dom|scheduler)\//.test(id)) return 'react';
          if (/node_modules\/(@xyflow|@dagrejs|d3-[a-z]+|zustand|classcat)\//.test(id)) return 'graph';
          return 'vendor';
        },
      },
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
    environmentOptions: { jsdom: { pretendToBeVisual: true } },
    testTimeout: 20000,
    // Times are formatted in the local zone: pin it so expectations are stable.
    env: { TZ: 'Asia/Shanghai' },
  },
});
