// A drawing pad: white ink on black, like MNIST's digits, drawn with a mouse, a pen or a finger.

const INK_WIDTH = 20; // in canvas pixels: a stroke like MNIST's, once the digit is scaled to 20x20

export class DrawingPad {
  constructor(canvas, { onDraw }) {
    this.canvas = canvas;
    this.context = canvas.getContext('2d');
    this.onDraw = onDraw;
    this.last = null; // where the pointer drawing the current stroke was, or null between strokes
    canvas.addEventListener('pointerdown', (event) => {
      canvas.setPointerCapture(event.pointerId);
      this.last = this.position(event);
      this.stroke([this.last]);
    });
    canvas.addEventListener('pointermove', (event) => {
      if (!this.last) return;
      // Coalesced events hold every position since the last frame: fast strokes stay smooth.
      const positions = (event.getCoalescedEvents?.() ?? [event]).map((e) => this.position(e));
      this.stroke([this.last, ...positions]);
      this.last = positions.at(-1) ?? this.last;
    });
    for (const type of ['pointerup', 'pointercancel']) canvas.addEventListener(type, () => { this.last = null; });
    this.clear();
  }

  clear() {
    this.context.fillStyle = '#000';
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.isEmpty = true;
  }

  toDataURL() {
    return this.canvas.toDataURL('image/png');
  }

  position(event) { // from CSS pixels (the canvas may be shown smaller) to canvas pixels
    const box = this.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (this.canvas.width / box.width),
      (event.clientY - box.top) * (this.canvas.height / box.height)];
  }

  stroke(positions) {
    const { context } = this;
    Object.assign(context, { strokeStyle: '#fff', lineWidth: INK_WIDTH, lineCap: 'round', lineJoin: 'round' });
    context.beginPath();
    context.moveTo(...positions[0]);
    for (const position of positions) context.lineTo(...position);
    context.stroke();
    this.isEmpty = false;
    this.onDraw();
  }
}
