# Differential test program: computes Fibonacci numbers modulo a prime with a hash table.
use strict;
use warnings;
use Time::HiRes qw(usleep);
$| = 1;
my $n = $ARGV[0] // 120;
my %seen;
my ($a, $b) = (0, 1);
for my $i (1 .. $n) {
    ($a, $b) = ($b, ($a + $b) % 1000000007);
    $seen{$a % 1000} .= "$i,";
    printf "%d %d %d\n", $i, $a, scalar(keys %seen);
    usleep(10000);
}
my $sum = 0;
$sum += length($seen{$_}) for keys %seen;
print "done $sum\n";
