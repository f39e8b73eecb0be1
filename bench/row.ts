/** One figure of the performance table: its value, unit and goal (empty: reported only). */
export interface Row {
  group: string;
  figure: string;
  value: number;
  unit: string;
  goal: string;
}
