import { type CommandSpec, flagName } from './flags.js';

/** Shells `migfuzz completion` writes a script for. */
export const SHELLS = ['bash', 'zsh'] as const;

/**
 * A completion script for commands, subcommands, flags and flag choices, from the commands'
 * specs. zsh runs the bash function through its bashcompinit layer (the function is small and
 * the same for both). Values of other flags and positionals complete as file names.
 */
export function completionScript(shell: (typeof SHELLS)[number], specs: readonly CommandSpec[]): string {
  const top = [...new Set(specs.map((s) => s.name.split(' ')[0]!)), '--help', '--version'];
  const subs = new Map<string, string[]>();
  for (const s of specs) {
    const [head, sub] = s.name.split(' ');
    if (sub) subs.set(head!, [...(subs.get(head!) ?? []), sub]);
  }
  const cases = specs.map((s) => {
    const flags = [...Object.keys(s.flags).map(flagName), '--help'].join(' ');
    const args =
      s.name === 'help'
        ? top.filter((t) => !t.startsWith('-')).join(' ')
        : s.args.includes('|')
          ? s.args.replace(/\|/g, ' ')
          : '';
    return `    '${s.name}') flags='${flags}'; words='${args}' ;;`;
  });
  const subCases = [...subs].map(
    ([head, list]) => `    ${head}) COMPREPLY=( $(compgen -W '${list.join(' ')}' -- "$cur") ); return ;;`,
  );
  const bash = [
    '# migfuzz completion (bash): source <(npx migfuzz completion bash)',
    '_migfuzz() {',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax, not a template
    '  local cur="${COMP_WORDS[COMP_CWORD]}" key="${COMP_WORDS[1]}" flags="" words=""',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=( $(compgen -W '${top.join(' ')}' -- "$cur") ); return`,
    '  fi',
    '  if [ "$COMP_CWORD" -eq 2 ]; then',
    '    case "$key" in',
    ...subCases,
    '    esac',
    '  fi',
    '  case "$key" in',
    ...[...subs.keys()].map((head) => `    ${head}) key="${head} \${COMP_WORDS[2]}" ;;`),
    '  esac',
    '  case "$key" in',
    ...cases,
    '  esac',
    '  if [[ "$cur" == -* ]]; then',
    '    COMPREPLY=( $(compgen -W "$flags" -- "$cur") )',
    '  elif [ -n "$words" ]; then',
    '    COMPREPLY=( $(compgen -W "$words" -- "$cur") )',
    '  else',
    '    COMPREPLY=( $(compgen -f -- "$cur") )',
    '  fi',
    '}',
    'complete -o filenames -F _migfuzz migfuzz',
  ].join('\n');
  if (shell === 'bash') return bash;
  return [
    '#compdef migfuzz',
    '# migfuzz completion (zsh): source <(npx migfuzz completion zsh)',
    'autoload -U +X bashcompinit && bashcompinit',
    bash.split('\n').slice(1).join('\n'),
  ].join('\n');
}
