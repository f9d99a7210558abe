// The RP2040's UARTs (ARM PL011) as the firmware sees them, on top of rp2040js's RPUART.
//
// rp2040js 1.3.3 keeps its UART transmit interrupt raised at all times and has no receive timeout: MicroPython's
// UART interrupt handler then runs forever as soon as a UART is opened, and `UART.irq(IRQ_RXIDLE)` (which
// network.PPP relies on) never fires. This puts the PL011's interrupt rules back (ARM DDI 0183, 2.4.3):
// - receive: raised while the RX FIFO holds at least its trigger level (UARTIFLS; 1 byte with the FIFO off);
// - receive timeout: raised when the RX FIFO holds data and nothing arrived for 32 bit periods, cleared when the
//   FIFO empties or through UARTICR;
// - transmit: raised when the TX FIFO passes down through its level; the model sends a byte the moment it is
//   written, so every write to UARTDR raises it; cleared through UARTICR.
// Bytes from the host arrive as on a wire: one every 10 bit periods at the programmed baud rate. A byte that finds
// the RX FIFO full is lost (an overrun, counted), and so is a byte sent while the UART is disabled.
const UARTDR = 0x0;
const UARTIFLS = 0x34;
const UARTICR = 0x44;
const RXINTR = 1 << 4;
const TXINTR = 1 << 5;
const RTINTR = 1 << 6;
const FIFO_DEPTH = 32;
const RX_LEVELS = [4, 8, 16, 24, 28]; // UARTIFLS.RXIFLSEL: 1/8 .. 7/8 full
const BITS_PER_CHARACTER = 10; // start, 8 data, stop
const TIMEOUT_BITS = 32;

export function modelPL011(uart, clock) {
  const wire = []; // bytes on their way in, one per character time
  const stats = { received: 0, overruns: 0, lost_disabled: 0 };
  let levelSelect = 0b010; // reset value of UARTIFLS: 1/2
  const bitNanos = () => 1e9 / (uart.baudRate || 115200);
  const rxLevel = () => (uart.fifosEnabled ? RX_LEVELS[levelSelect] ?? FIFO_DEPTH : 1);

  const update = () => uart.rp2040.setInterrupt(uart.irq, !!(uart.interruptStatus & uart.interruptMask));
  const rxState = () => {
    if (uart.rxFIFO.itemCount >= rxLevel()) uart.interruptStatus |= RXINTR;
    else uart.interruptStatus &= ~RXINTR;
    if (uart.rxFIFO.empty) uart.interruptStatus &= ~RTINTR;
  };
  const idle = clock.createAlarm(() => {
    if (!uart.rxFIFO.empty) uart.interruptStatus |= RTINTR;
    update();
  });
  let arriving = false; // rp2040js's clock leaves an alarm's `scheduled` set after it fired: keep our own
  const arrive = clock.createAlarm(() => {
    arriving = false;
    const byte = wire.shift();
    if (!uart.enabled || !uart.rxEnabled) stats.lost_disabled++;
    else if (uart.rxFIFO.itemCount >= (uart.fifosEnabled ? FIFO_DEPTH : 1)) stats.overruns++;
    else {
      uart.rxFIFO.push(byte);
      stats.received++;
      rxState();
      idle.schedule(TIMEOUT_BITS * bitNanos());
    }
    update();
    if (wire.length) nextByte();
  });
  const nextByte = () => {
    arriving = true;
    arrive.schedule(BITS_PER_CHARACTER * bitNanos());
  };

  uart.checkInterrupts = update;
  uart.feedByte = (value) => {
    wire.push(value);
    if (!arriving) nextByte();
  };
  const readRegister = uart.readUint32.bind(uart);
  uart.readUint32 = (offset) => {
    if (offset === UARTIFLS) return (levelSelect << 3) | 0b010;
    const value = readRegister(offset);
    if (offset === UARTDR) {
      rxState();
      update();
    }
    return value;
  };
  const writeRegister = uart.writeUint32.bind(uart);
  uart.writeUint32 = (offset, value) => {
    if (offset === UARTIFLS) {
      levelSelect = (value >> 3) & 0b111;
      rxState();
      update();
      return;
    }
    writeRegister(offset, value);
    if (offset === UARTDR) {
      uart.interruptStatus |= TXINTR;
      update();
    } else if (offset === UARTICR) {
      rxState(); // what is still true comes back at once (the FIFO is still at its level)
      update();
    }
  };
  return stats;
}
