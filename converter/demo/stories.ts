/**
 * The demo corpus: simple stories from a small grammar written for lmflash
 * (its own names, words and plots), generated deterministically from a seed so
 * that the demo model can be rebuilt byte for byte anywhere. A story is a
 * short arc — who, where, a wish or a problem, a try, a helper, an ending —
 * told in sentences a tiny model can learn.
 */
import { seededRandom } from '../../src/random.js';

/** Bump when the grammar changes what it writes: cached demo models (out/) are keyed by it. */
export const STORY_GRAMMAR_VERSION = 1;

const NAMES = ['Mira', 'Tobin', 'Pella', 'Juno', 'Odo', 'Kestrel', 'Lumi', 'Bram', 'Nessa', 'Pip', 'Wren', 'Ossian'];
const CREATURES = ['fox', 'hedgehog', 'otter', 'sparrow', 'beetle', 'goat', 'mole', 'heron', 'snail', 'badger'];
const PLACES = [
  'a village by the river', 'the edge of a pine wood', 'a garden full of beans', 'a windy hill',
  'a little harbour', 'an old mill', 'a meadow of tall grass', 'the bottom of a quiet valley',
];
const LIKES = ['collecting shiny stones', 'counting clouds', 'building boats from bark', 'humming to the bees',
  'drawing maps in the sand', 'baking nut bread', 'watching the stars', 'finding round pebbles'];
const WISHES = [
  ['see the sea', 'walked and walked toward the sound of the waves'],
  ['find the lost bell', 'looked under every leaf and stone'],
  ['climb the tall rock', 'tried to climb, but the rock was slippery'],
  ['make a kite', 'cut paper and tied string, but the kite would not fly'],
  ['cross the stream', 'looked for a way over the cold, fast water'],
  ['light the lantern', 'waited for dark, but the lantern had no oil'],
] as const;
const FEELINGS = ['sad', 'tired', 'worried', 'cross', 'lonely'];
const HELPS = [
  'showed a hidden path between the ferns', 'lent a long piece of rope', 'shared a warm cup of tea',
  'knew a song that made the wind blow', 'carried a basket of tools', 'pointed the way with a wing',
];
const ENDINGS = [
  'From that day on, they were the best of friends.',
  'That night, {name} slept with a big smile.',
  'And every spring after that, they did it again together.',
  '{name} learned that help is never far away.',
  'The whole {place2} cheered, and {name} felt very proud.',
];
const PLACE_WORDS = ['village', 'wood', 'garden', 'hill', 'harbour', 'meadow', 'valley'];

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)];
}

/** One story, as one line of text. */
export function story(rand: () => number): string {
  const name = pick(rand, NAMES);
  let friend = pick(rand, NAMES);
  while (friend === name) friend = pick(rand, NAMES);
  const creature = pick(rand, CREATURES);
  const friendCreature = pick(rand, CREATURES);
  const [wish, attempt] = pick(rand, WISHES);
  const opening = rand() < 0.6 ? 'Once upon a time' : pick(rand, ['One morning', 'Long ago', 'One bright day']);
  const sentences = [
    `${opening}, there was a little ${creature} named ${name}.`,
    `${name} lived in ${pick(rand, PLACES)} and loved ${pick(rand, LIKES)}.`,
    `One day, ${name} wanted to ${wish}.`,
    `${name} ${attempt}.`,
    `${name} felt ${pick(rand, FEELINGS)} and sat down.`,
    `Then a ${friendCreature} named ${friend} came by and asked, "Why are you ${pick(rand, ['sad', 'so quiet', 'sitting here'])}?"`,
    `${name} told ${friend} everything.`,
    `${friend} smiled and ${pick(rand, HELPS)}.`,
    `Together they were able to ${wish}.`,
    pick(rand, ENDINGS).replaceAll('{name}', name).replace('{place2}', pick(rand, PLACE_WORDS)),
  ];
  if (rand() < 0.3) sentences.splice(2, 0, `Every day, ${name} said hello to the ${pick(rand, ['sun', 'river', 'trees', 'birds'])}.`);
  return sentences.join(' ');
}

/** `count` stories from `seed`, one per line. */
export function demoCorpus(count: number, seed = 2026): string {
  const rand = seededRandom(seed);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(story(rand));
  return lines.join('\n') + '\n';
}
