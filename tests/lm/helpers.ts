/** Helpers shared by the language-model tests. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root (two levels above this file). */
export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * `../shared/lm/<sub>` resolved from the project root (or from $SAE_SHARED_DIR, for a worktree
 * that is not beside shared/), or null (with a note on stderr) when it is absent, as on a user's
 * fresh clone.
 */
export async function sharedLm(sub: string): Promise<string | null> {
  const shared = Deno.env.get("SAE_SHARED_DIR") ?? join(PROJECT_ROOT, "..", "shared");
  const p = join(shared, "lm", sub);
  try {
    await Deno.stat(p);
    return p;
  } catch {
    console.error(`skipping: ${p} is absent (the shared language-model files)`);
    return null;
  }
}
