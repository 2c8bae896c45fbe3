import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { Murmur2Partitioner } from './partitioner.js';

function metadata(count: number): PartitionMetadata[] {
  return Array.from({ length: count }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
  }));
}

describe('Murmur2Partitioner', () => {
  it('places every keyed message on the partition kafkajs would', () => {
    const ours = Murmur2Partitioner();
    const theirs = Partitioners.DefaultPartitioner();
    let state = 12345;
    const random = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 4294967296;
    };
    for (let i = 0; i < 20_000; i += 1) {
      const length = Math.floor(random() * 40);
      const key =
        i % 2 === 0
          ? `app.users:[${Math.floor(random() * 1e9)},"${'é😀x'.repeat(length % 5)}"]`
          : Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
      const partitionMetadata = metadata(1 + (i % 12));
      const args = { topic: 't', partitionMetadata, message: { key, value: null } };
      expect(ours(args)).toBe(theirs(args));
    }
  });

  it('honours an explicit partition', () => {
    const ours = Murmur2Partitioner();
    expect(
      ours({
        topic: 't',
        partitionMetadata: metadata(3),
        message: { key: 'k', value: null, partition: 2 },
      }),
    ).toBe(2);
  });
});
