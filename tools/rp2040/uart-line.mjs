// The RP2040's UARTs as a scan engine sees them: bytes arrive one character time apart, into a 32-byte FIFO.
//
// rp2040js 1.3.3 takes a byte into the receive FIFO the instant it is fed (a burst of more than 32 bytes
// overflows it), and raises the transmit interrupt again after every register access, although the PL011 raises
// it only when its FIFO passes the trigger level and keeps it cleared after a write to UARTICR. MicroPython's
// UART driver enables that interrupt and clears it in its handler: under rp2040js the handler runs for ever and
// nothing else does. This module gives each UART
// - a line: fed bytes wait in a queue and enter the FIFO one character time (10 bits at the programmed baud
//   rate) apart, as from a real scan engine; a byte that finds the FIFO full is lost (an overrun, counted), as
//   on the chip while the firmware runs with interrupts off (a flash erase);
// - a transmit interrupt raised once per byte written (transmission is instant: the FIFO empties through its
//   trigger level at once) and cleared by UARTICR.

const UARTDR = 0x0;
const UARTICR = 0x44;
const TX_INTERRUPT = 1 << 5;
const BITS_PER_CHARACTER = 10; // start, 8 data, stop
const FALLBACK_BAUD = 9600; // until the firmware programs the divider

const FUNCTION_UART = 2; // RP2040 GPIO function F2

/** The UART (0 or 1) whose RX is GPIO `pin` when the pin is in function `functionSelect`, or null. The RP2040's
 * UART pins repeat in blocks of four (TX, RX, CTS, RTS): UART0 on GP0-3, 12-19, 28-29, UART1 on GP4-11, 20-27. */
export function uartReceivingAt(pin, functionSelect) {
  if (functionSelect !== FUNCTION_UART || (pin & 3) !== 1) return null;
  return ((pin + 4) >> 3) & 1;
}

export class UartLine {
  constructor(uart, clock) {
    this.uart = uart;
    this.clock = clock;
    this.queue = [];
    this.overruns = 0;
    this.alarm = clock.createAlarm(() => this.deliver());
    this.fixTransmitInterrupt();
  }

  fixTransmitInterrupt() {
    const uart = this.uart;
    const write = uart.writeUint32.bind(uart);
    uart.checkInterrupts = () => {
      uart.rp2040.setInterrupt(uart.irq, !!(uart.interruptStatus & uart.interruptMask));
    };
    uart.writeUint32 = (offset, value) => {
      write(offset, value);
      if (offset === UARTDR) {
        uart.interruptStatus |= TX_INTERRUPT;
        uart.checkInterrupts();
      } else if (offset === UARTICR) {
        uart.checkInterrupts();
      }
    };
  }

  characterNanos() {
    const baud = this.uart.intDivisor ? this.uart.baudRate : FALLBACK_BAUD;
    return (BITS_PER_CHARACTER * 1e9) / baud;
  }

  feed(bytes) {
    const idle = this.queue.length === 0;
    this.queue.push(...bytes);
    if (idle) this.alarm.schedule(this.characterNanos());
  }

  deliver() {
    const byte = this.queue.shift();
    if (this.uart.rxFIFO.full) this.overruns++;
    else this.uart.feedByte(byte);
    if (this.queue.length) this.alarm.schedule(this.characterNanos());
  }
}
