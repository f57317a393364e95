// A Go program: worker goroutines fed and drained through channels, a time.Ticker pacing
// the rounds, time.Sleep in the workers, a time.After deadline and a select over them.
// Its output depends only on N.
// Usage: go_timers N
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

type job struct{ round, index int }
type result struct{ round, index, value int }

// collatz returns the number of Collatz steps from x to 1.
func collatz(x int) int {
	steps := 0
	for x != 1 {
		if x%2 == 0 {
			x /= 2
		} else {
			x = 3*x + 1
		}
		steps++
	}
	return steps
}

func worker(id int, jobs <-chan job, results chan<- result, wg *sync.WaitGroup) {
	defer wg.Done()
	for j := range jobs {
		time.Sleep(time.Duration(1+(j.index+id)%3) * time.Millisecond)
		v := 0
		for k := 1; k <= 2000; k++ {
			v += collatz(j.round*2000 + k + j.index)
		}
		results <- result{j.round, j.index, v}
	}
}

func main() {
	n := 300
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil {
			n = v
		}
	}
	const workers = 4
	fmt.Printf("go with %d rounds, %d workers\n", n, workers)
	jobs := make(chan job)
	results := make(chan result, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go worker(w, jobs, results, &wg)
	}
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	total := 0
	ticks := 0
	for round := 0; round < n; round++ {
		<-ticker.C
		ticks++
		go func(r int) {
			for i := 0; i < workers; i++ {
				jobs <- job{r, i}
			}
		}(round)
		sum := 0
		deadline := time.After(30 * time.Second)
		for got := 0; got < workers; got++ {
			select {
			case res := <-results:
				if res.round != round {
					fmt.Printf("round %d: result of round %d\n", round, res.round)
				}
				sum += res.value * (res.index + 1)
			case <-deadline:
				fmt.Printf("round %d: no result in 30 s\n", round)
				os.Exit(1)
			}
		}
		total += sum
		if round%10 == 0 {
			fmt.Printf("round %d sum %d total %d\n", round, sum, total)
		}
	}
	close(jobs)
	wg.Wait()
	time.Sleep(50 * time.Millisecond)
	fmt.Printf("ticks %d total %d\ndone\n", ticks, total)
}
