/** Opening the activation source a config names. */
import type { TrainConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import type { ActivationSource } from "./source.ts";
import { SyntheticSource } from "./synthetic.ts";

/** Opens the activation source named by `cfg.data` ("synthetic" or activation files). */
export function openSource(cfg: TrainConfig): Promise<ActivationSource> {
  if (cfg.data === "synthetic") {
    return Promise.resolve(new SyntheticSource(cfg.synthetic, cfg.d_in));
  }
  return Promise.reject(
    new UserError(
      `data '${cfg.data}': only the built-in 'synthetic' source exists so far ` +
        `(activation files are read by a later release); use --data synthetic`,
    ),
  );
}
