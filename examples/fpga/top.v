// A blinky for the iCEstick (iCE40-HX1K, TQ144, 12 MHz clock): the five
// LEDs show the top bits of a free-running counter. D1..D4 count in
// binary (D1 toggles every 2^22 cycles, about 0.35 s) and the green D5
// blinks at about 1.4 Hz.
module top (
    input  wire clk,
    output wire led1,
    output wire led2,
    output wire led3,
    output wire led4,
    output wire led5
);
    reg [25:0] counter = 0;

    always @(posedge clk)
        counter <= counter + 1;

    assign {led4, led3, led2, led1} = counter[25:22];
    assign led5 = counter[23];
endmodule
