/**
 * Token bytes on their way to a terminal (generate and chat, native or
 * serial): assembled into whole UTF-8 characters as they complete, `<unk>`
 * shown as U+FFFD (it has no bytes of its own, so a reply would silently
 * look short), and control characters other than newline and tab removed: a
 * model or a board must not be able to send a terminal escape sequences
 * (window title, clear screen, colours), as the board's console mode already
 * ensures. `--json` keeps the raw bytes instead.
 */
import { StringDecoder } from 'node:string_decoder';

export const REPLACEMENT = '\uFFFD';

/** C0 controls but tab and newline, DEL, and the C1 controls (some terminals act on U+009B as CSI). */
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** `text` without the control characters a terminal would act on (newline and tab stay). */
export function stripControls(text: string): string {
  return text.replace(CONTROLS, '');
}

/** One reply's text for a terminal, fed token by token. */
export class TerminalText {
  private readonly decoder = new StringDecoder('utf8');

  /** unkId: the vocabulary's `<unk>` id (null: none, or unknown). */
  constructor(private readonly unkId: number | null = null) {}

  /** The displayable text that token `id` with `bytes` completes. */
  token(id: number, bytes: Uint8Array): string {
    if (id === this.unkId) return stripControls(this.decoder.end()) + REPLACEMENT;
    return stripControls(this.decoder.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)));
  }

  /** Raw bytes whose ids are not known (the native core's stream, which marks `<unk>` itself). */
  bytes(chunk: Uint8Array): string {
    return stripControls(this.decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)));
  }

  /** What is left at the end: a cut-off character as U+FFFD. */
  end(): string {
    return stripControls(this.decoder.end());
  }
}
