// A Java NIO program: one Selector (epoll) over the source end of a Pipe, woken by a writer
// thread that sleeps between messages and by Selector.wakeup() from a timer thread
// (java.util.Timer), with select(timeout) pacing the loop. Its output depends only on N.
// Usage: java NioSelector N

import java.nio.ByteBuffer;
import java.nio.channels.Pipe;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.util.Timer;
import java.util.TimerTask;
import java.util.concurrent.atomic.AtomicInteger;

public class NioSelector {
    public static void main(String[] args) throws Exception {
        final int n = args.length > 0 ? Integer.parseInt(args[0]) : 300;
        System.out.println("nio with " + n + " messages");
        Pipe pipe = Pipe.open();
        pipe.source().configureBlocking(false);
        Selector selector = Selector.open();
        pipe.source().register(selector, SelectionKey.OP_READ);

        Thread writer = new Thread(() -> {
            try {
                for (int i = 0; i < n; i++) {
                    Thread.sleep(10);
                    ByteBuffer b = ByteBuffer.allocate(4);
                    b.putInt(i);
                    b.flip();
                    while (b.hasRemaining()) {
                        pipe.sink().write(b);
                    }
                }
                pipe.sink().close();
            } catch (Exception e) {
                e.printStackTrace();
                System.exit(2);
            }
        });
        writer.start();

        final AtomicInteger wakeups = new AtomicInteger();
        Timer timer = new Timer(true);
        timer.scheduleAtFixedRate(new TimerTask() {
            public void run() {
                wakeups.incrementAndGet();
                selector.wakeup();
            }
        }, 25, 25);

        ByteBuffer in = ByteBuffer.allocate(64);
        ByteBuffer partial = ByteBuffer.allocate(4);
        long sum = 0;
        int count = 0;
        boolean open = true;
        while (open) {
            selector.select(100);
            for (SelectionKey key : selector.selectedKeys()) {
                if (!key.isReadable()) {
                    continue;
                }
                in.clear();
                int r = pipe.source().read(in);
                if (r < 0) {
                    key.cancel();
                    open = false;
                    continue;
                }
                in.flip();
                while (in.hasRemaining()) {
                    partial.put(in.get());
                    if (!partial.hasRemaining()) {
                        partial.flip();
                        int v = partial.getInt();
                        partial.clear();
                        if (v != count) {
                            System.out.println("message " + count + " was " + v);
                        }
                        sum += (long) v * v;
                        count++;
                        if (count % 25 == 0) {
                            System.out.println("received " + count + " sum " + sum);
                        }
                    }
                }
            }
            selector.selectedKeys().clear();
        }
        timer.cancel();
        writer.join();
        selector.close();
        System.out.println("received " + count + " sum " + sum);
        System.out.println("timer woke the selector: " + (wakeups.get() > 0));
        System.out.println("done");
    }
}
