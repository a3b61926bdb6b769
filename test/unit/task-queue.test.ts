/** TaskQueue: one link's handlers run strictly in order, async ones too; a failing task is reported and the rest still run. */
import t from 'tap'
import { TaskQueue } from '../../src/sdk/task-queue.js'

/** A promise and the function that settles it, to hold an async task open. */
function gate (): { promise: Promise<void>, open: () => void } {
  let open = (): void => {}
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

t.test('synchronous tasks run at once, in order, before push returns', async (t) => {
  const ran: number[] = []
  const queue = new TaskQueue(() => {})
  queue.push(() => { ran.push(1) }, () => { ran.push(2) })
  queue.push(() => { ran.push(3) })
  t.same(ran, [1, 2, 3], 'all three ran synchronously, in order')
})

t.test('a task waits for the async one before it, whenever it was pushed', async (t) => {
  const ran: string[] = []
  const queue = new TaskQueue(() => {})
  const db = gate()
  queue.push(async () => {
    await db.promise
    ran.push('open')
  })
  queue.push(() => { ran.push('message') })
  t.same(ran, [], 'the message waits while the open awaits')
  const idle = queue.whenIdle()
  db.open()
  await idle
  t.same(ran, ['open', 'message'], 'open before message')
})

/** 'idle' if `queue.whenIdle()` resolves before the next turn of the event loop, else 'waiting'. */
async function idleNow (queue: TaskQueue): Promise<string> {
  return await Promise.race([
    queue.whenIdle().then(() => 'idle'),
    new Promise<string>((resolve) => setImmediate(() => resolve('waiting')))
  ])
}

t.test('whenIdle resolves at once when nothing runs, and waits while a task does', async (t) => {
  const queue = new TaskQueue(() => {})
  t.equal(await idleNow(queue), 'idle', 'a fresh queue is idle')
  const db = gate()
  queue.push(async () => await db.promise)
  t.equal(await idleNow(queue), 'waiting', 'a queue with a task awaiting is not idle')
  db.open()
  await queue.whenIdle()
  t.equal(await idleNow(queue), 'idle', 'idle again once the task finished')
})

t.test('bad input: a task that throws or rejects is reported, and later tasks still run', async (t) => {
  const errors: string[] = []
  const ran: string[] = []
  const queue = new TaskQueue((err) => errors.push((err as Error).message))
  queue.push(
    () => { throw new Error('sync boom') },
    async () => { throw new Error('async boom') },
    () => { ran.push('after') }
  )
  await queue.whenIdle()
  t.same(errors, ['sync boom', 'async boom'], 'both failures reach onError, in order')
  t.same(ran, ['after'], 'the task after them ran')
  queue.push(() => { ran.push('later') })
  t.same(ran, ['after', 'later'], 'the queue still runs new tasks')
})
