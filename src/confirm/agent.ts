/**
 * The guest side of a real-QEMU confirmation: `/init` of the test guest's initramfs, a busybox
 * shell script (no C compiler on the host is needed). It loads the virtio modules, keeps the
 * UART under test open in raw mode (copying what it receives to a file), and then serves
 * commands from migfuzz, one line each, on its own serial line (the agent tty, not the UART
 * under test):
 *
 *   C <id> hello                       → MFZ <id> ok <kernel release>
 *   C <id> uart-config <stty args...>  → stty on the UART; `trig=N` writes rx_trig_bytes
 *   C <id> uart-write <hex>            → the bytes written to the UART tty
 *   C <id> vport-open <slot> <port>    → the port held open: a reader copies it to a file, a
 *                                        writer copies a FIFO to it (so writes never block the
 *                                        agent, as Linux blocks writers while the host side is
 *                                        disconnected)
 *   C <id> vport-close <slot> <port>   → every holder of the port killed (its fd released)
 *   C <id> vport-write <slot> <port> <hex>
 *   C <id> report <slot:port>...       → one `MFZ <id> port|rx|irq ...` line per fact, then ok
 *
 * Every reply is one line tagged `MFZ <id>`; a failure is `MFZ <id> err <text>`. Files live in
 * /run/mfz, in guest RAM, so they travel with the VM across migrations.
 */
export const AGENT_INIT = String.raw`#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console; do
    insmod /lib/modules/$m.ko 2>/dev/null
done
AGENT=ttyS1 UART=ttyS0
for a in $(cat /proc/cmdline); do
    case $a in mfz.agent=*) AGENT=${'$'}{a#mfz.agent=} ;; mfz.uart=*) UART=${'$'}{a#mfz.uart=} ;; esac
done
A=/dev/$AGENT U=/dev/$UART
stty -F $A 115200 raw -echo -ixon -ixoff clocal -crtscts
mkdir -p /run/mfz && cd /run/mfz
say() { echo "MFZ $*" > $A; }
if [ "$UART" != none ] && stty -F $U 115200 raw -echo -ixon -ixoff clocal -crtscts 2>/dev/null; then
    (while :; do cat $U >> uart.rx; sleep 0.05; done) &
fi
portdev() {
    for p in /sys/bus/pci/devices/0000:00:$1.0/virtio*/virtio-ports/vport*p$2; do
        [ -e "$p" ] && { echo /dev/${'$'}{p##*/}; return 0; }
    done
    return 1
}
vopen() {
    d=$(portdev $1 $2) || { echo "no port $2 on slot $1"; return 1; }
    k=p$1-$2
    [ -e $k.pid ] && { echo "port $2 already open"; return 1; }
    rm -f $k.opened; mkfifo $k.fifo 2>/dev/null
    setsid sh -c '
        exec 3<>"$1" || exit 1
        touch "$2.opened"
        sleep 2147483647 <>"$2.fifo" &
        cat "$2.fifo" >&3 &
        while :; do cat <&3 >> "$2.rx"; sleep 0.05; done' holder "$d" $k </dev/null >/dev/null 2>&1 &
    echo $! > $k.pid
    n=0; while [ ! -e $k.opened ] && [ $n -lt 40 ]; do sleep 0.05; n=$((n+1)); done
    [ -e $k.opened ] || { kill -TERM -$(cat $k.pid) 2>/dev/null; rm -f $k.pid; echo "cannot open $d"; return 1; }
    [ -e $k.spool ] && { cat $k.spool > $k.fifo; rm -f $k.spool; }
    return 0
}
vclose() {
    k=p$1-$2
    [ -e $k.pid ] || { echo "port $2 not open"; return 1; }
    kill -TERM -$(cat $k.pid) 2>/dev/null; rm -f $k.pid $k.opened
    return 0
}
vwrite() {
    k=p$1-$2
    if [ -e $k.pid ]; then echo "$3" | xxd -r -p > $k.fifo; else echo "$3" | xxd -r -p >> $k.spool; fi
}
report() {
    id=$1; shift
    for sp in "$@"; do
        s=${'$'}{sp%:*} p=${'$'}{sp#*:} k=p${'$'}{sp%:*}-${'$'}{sp#*:}
        d=$(portdev $s $p) || { say $id port $s:$p missing; continue; }
        f=/sys/kernel/debug/virtio-ports/${'$'}{d#/dev/}
        h=$(sed -n 's/^host_connected: //p' $f) g=$(sed -n 's/^guest_connected: //p' $f)
        b=$(sed -n 's/^bytes_discarded: //p' $f)
        say $id port $s:$p host=$h guest=$g discarded=$b
        say $id rx port $s:$p $( [ -e $k.rx ] && xxd -p $k.rx | tr -d '\n')
    done
    say $id rx uart $( [ -e uart.rx ] && xxd -p uart.rx | tr -d '\n')
    grep -E 'ttyS|virtio' /proc/interrupts | while read -r n c rest; do say $id irq ${'$'}{rest##* } $c; done
}
say ready $(uname -r)
while IFS= read -r line; do
    set -- $line
    [ "$1" = C ] || continue
    id=$2 op=$3; shift 3
    case $op in
        hello) say $id ok $(uname -r) ;;
        uart-config)
            for a in "$@"; do case $a in trig=*) echo ${'$'}{a#trig=} > /sys/class/tty/$UART/rx_trig_bytes ;; esac; done
            set -- $(for a in "$@"; do case $a in trig=*) ;; *) echo $a ;; esac; done)
            if [ $# -eq 0 ] || out=$(stty -F $U "$@" 2>&1); then say $id ok; else say $id err $out; fi ;;
        uart-write) if out=$(echo "$1" | xxd -r -p 2>&1 > $U); then say $id ok; else say $id err $out; fi ;;
        vport-open) if out=$(vopen "$@"); then say $id ok; else say $id err $out; fi ;;
        vport-close) if out=$(vclose "$@"); then say $id ok; else say $id err $out; fi ;;
        vport-write) vwrite "$@"; say $id ok ;;
        report) report $id "$@"; say $id ok ;;
        *) say $id err unknown command $op ;;
    esac
done < $A
say exit agent loop ended
`;
