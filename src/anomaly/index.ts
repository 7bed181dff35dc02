export * from './detectors.ts';
export * from './monitor.ts';
