// Types for scripts/namespace.js, which scripts/test.js (plain Node, no TypeScript) imports too.
export const NAMESPACE_VARIABLE: string;
export function inNamespace(command: string[]): [string, string[]];
export function namespaceUnavailable(): string | undefined;
export function rerunInNamespace(): void;
